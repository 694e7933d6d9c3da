package fault

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/mqscope/mqscope/proxy"
)

// Register adds the set's routes to the control API (same token and checks as the others):
//
//	GET    /faults                       the rules for every connection: name, text, dirs, times applied
//	POST   /faults                       add one: a JSON string in the --fault grammar, or an object
//	                                     {"rule": "...", "name": ...} or {"action": ..., KEY: ...}
//	DELETE /faults/{name}                remove one
//	GET    /connections/{id}/faults      the connection's own rules, then those for every connection,
//	                                     with the times each was applied on it
//	POST   /connections/{id}/faults      add a rule for that connection only (applied before the others)
//	DELETE /connections/{id}/faults      remove the connection's own rules
//	DELETE /connections/{id}/faults/{name}  remove one of them
//
// A rule that does not parse is 400 with the parse error; a name in use, 409.
func (s *Set) Register(api *proxy.API) {
	api.Handle("GET /faults", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		proxy.WriteJSON(w, http.StatusOK, s.List())
	}))
	api.Handle("POST /faults", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.post(w, r, "all", s.Add)
	}))
	api.Handle("DELETE /faults/{name}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Remove(r.PathValue("name"))
		answer(w, http.StatusOK, st, err)
	}))
	api.Handle("GET /connections/{id}/faults", s.connRoute(func(w http.ResponseWriter, r *http.Request, id int) {
		rules, err := s.ConnRules(id)
		answer(w, http.StatusOK, rules, err)
	}))
	api.Handle("POST /connections/{id}/faults", s.connRoute(func(w http.ResponseWriter, r *http.Request, id int) {
		s.post(w, r, "connection", func(rule *Rule) error { return s.AddConn(id, rule) })
	}))
	api.Handle("DELETE /connections/{id}/faults", s.connRoute(func(w http.ResponseWriter, r *http.Request, id int) {
		gone, err := s.RemoveConn(id, "")
		answer(w, http.StatusOK, gone, err)
	}))
	api.Handle("DELETE /connections/{id}/faults/{name}", s.connRoute(func(w http.ResponseWriter, r *http.Request, id int) {
		gone, err := s.RemoveConn(id, r.PathValue("name"))
		if err != nil {
			answer(w, 0, nil, err)
			return
		}
		answer(w, http.StatusOK, gone[0], nil)
	}))
}

// connRoute reads the connection id of a route.
func (s *Set) connRoute(h func(w http.ResponseWriter, r *http.Request, id int)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil {
			proxy.WriteError(w, http.StatusBadRequest, "connection id: want a number")
			return
		}
		h(w, r, id)
	})
}

// maxRuleBody bounds a rule posted.
const maxRuleBody = 64 << 10

// post reads a rule from the body and adds it with add.
func (s *Set) post(w http.ResponseWriter, r *http.Request, scope string, add func(*Rule) error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRuleBody))
	if err != nil {
		proxy.WriteError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if len(b) == 0 {
		proxy.WriteError(w, http.StatusBadRequest, `body: want a rule: "drop type=PUBACK" or {"rule": "drop type=PUBACK", "name": "lost"}`)
		return
	}
	sp, err := ParseSpec(b)
	if err != nil {
		proxy.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	rule, err := sp.Rule(0)
	if err == nil {
		err = add(rule)
	}
	if err != nil {
		answer(w, 0, nil, err)
		return
	}
	proxy.WriteJSON(w, http.StatusCreated, RuleStatus{Name: rule.Name, Text: rule.Text, Dirs: rule.Dirs.String(), Scope: scope})
}

// answer writes v with code, or the error with its status.
func answer(w http.ResponseWriter, code int, v any, err error) {
	switch {
	case err == nil:
		proxy.WriteJSON(w, code, v)
	case errors.Is(err, ErrNoRule), errors.Is(err, ErrNoConn):
		proxy.WriteError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrExists):
		proxy.WriteError(w, http.StatusConflict, err.Error())
	default:
		proxy.WriteError(w, http.StatusBadRequest, err.Error())
	}
}
