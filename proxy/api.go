package proxy

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
)

// API is the proxy's local control API (HTTP and JSON):
//
//	GET    /connections               the open connections, negotiated state and counters
//	GET    /connections/{id}          one of them
//	POST   /connections/{id}/close    close it; optional JSON body or query parameters
//	                                  reason_code (e.g. 0x98 or 152) and reason_string send
//	                                  the device a DISCONNECT first (MQTT 5)
//	DELETE /connections/{id}          the same as POST .../close
//	GET    /events[?filter=EXPR]      the records as JSON lines, streamed as they happen
//	GET    /metrics                   Prometheus text format
//
// Later steps register more routes (fault rules) with Handle.
type API struct {
	srv *Server
	in  *Inspector // may be nil
	hub *Hub       // may be nil
	mux *http.ServeMux
}

// NewAPI returns the control API of srv; in and hub may be nil (no state details, no events).
func NewAPI(srv *Server, in *Inspector, hub *Hub) *API {
	a := &API{srv: srv, in: in, hub: hub, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /connections", a.list)
	a.mux.HandleFunc("GET /connections/{id}", a.get)
	a.mux.HandleFunc("POST /connections/{id}/close", a.close)
	a.mux.HandleFunc("DELETE /connections/{id}", a.close)
	a.mux.HandleFunc("GET /events", a.events)
	a.mux.HandleFunc("GET /metrics", a.metricsHandler)
	a.mux.HandleFunc("GET /{$}", a.index)
	return a
}

// Handle adds a route.
func (a *API) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// ConnView is one connection in the API: the proxy's view and, when inspection runs, the
// negotiated state.
type ConnView struct {
	ConnStatus
	MQTT *inspect.ConnState `json:"mqtt,omitempty"`
}

func (a *API) view(st ConnStatus) ConnView {
	v := ConnView{ConnStatus: st}
	if a.in != nil {
		if s, ok := a.in.Snapshot(st.ID); ok {
			v.MQTT = &s
		}
	}
	return v
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (a *API) index(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"listen":   a.srv.Addr().String(),
		"upstream": a.srv.Upstream().String(),
		"endpoints": []string{"GET /connections", "GET /connections/{id}", "POST /connections/{id}/close",
			"DELETE /connections/{id}", "GET /events", "GET /metrics"},
	})
}

func (a *API) list(w http.ResponseWriter, _ *http.Request) {
	out := []ConnView{}
	for _, st := range a.srv.Conns() {
		out = append(out, a.view(st))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) find(w http.ResponseWriter, r *http.Request) (ConnStatus, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "connection id: want a number")
		return ConnStatus{}, false
	}
	for _, st := range a.srv.Conns() {
		if st.ID == id {
			return st, true
		}
	}
	apiError(w, http.StatusNotFound, "no open connection "+strconv.Itoa(id))
	return ConnStatus{}, false
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	if st, ok := a.find(w, r); ok {
		writeJSON(w, http.StatusOK, a.view(st))
	}
}

// closeRequest is the body of POST /connections/{id}/close.
type closeRequest struct {
	ReasonCode   *json.RawMessage `json:"reason_code"`
	ReasonString string           `json:"reason_string"`
}

// parseReasonCode accepts 152, "152" or "0x98".
func parseReasonCode(s string) (decode.ReasonCode, error) {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	v, err := strconv.ParseUint(s, 0, 8)
	if err != nil {
		return 0, errors.New("reason_code: want a number from 0 to 255, such as 0x98")
	}
	return decode.ReasonCode(v), nil
}

func (a *API) close(w http.ResponseWriter, r *http.Request) {
	st, ok := a.find(w, r)
	if !ok {
		return
	}
	var rc *decode.ReasonCode
	reasonString := r.URL.Query().Get("reason_string")
	if q := r.URL.Query().Get("reason_code"); q != "" {
		c, err := parseReasonCode(q)
		if err != nil {
			apiError(w, http.StatusBadRequest, err.Error())
			return
		}
		rc = &c
	}
	if r.ContentLength != 0 && r.Body != nil {
		var req closeRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			apiError(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
		if req.ReasonCode != nil {
			c, err := parseReasonCode(string(*req.ReasonCode))
			if err != nil {
				apiError(w, http.StatusBadRequest, err.Error())
				return
			}
			rc = &c
		}
		if req.ReasonString != "" {
			reasonString = req.ReasonString
		}
	}
	if rc == nil && reasonString != "" {
		c := decode.AdministrativeAction
		rc = &c
	}
	if rc != nil && !rc.AllowedIn(decode.DISCONNECT) {
		apiError(w, http.StatusBadRequest, "reason code "+rc.String()+" is not allowed in DISCONNECT")
		return
	}
	if err := a.srv.CloseConn(st.ID, rc, reasonString); err != nil {
		apiError(w, http.StatusNotFound, err.Error())
		return
	}
	res := map[string]any{"closed": st.ID}
	if rc != nil {
		res["reason_code"] = int(*rc)
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *API) events(w http.ResponseWriter, r *http.Request) {
	if a.hub == nil {
		apiError(w, http.StatusNotFound, "no event stream: inspection is off")
		return
	}
	var f *inspect.Filter
	if src := r.URL.Query().Get("filter"); src != "" {
		var err error
		if f, err = inspect.CompileFilter(src); err != nil {
			apiError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	sub := a.hub.Subscribe(f)
	defer a.hub.Unsubscribe(sub)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	for {
		select {
		case line, ok := <-sub.C:
			if !ok {
				return
			}
			if _, err := w.Write(line); err != nil {
				return
			}
			// Write what else is queued before flushing.
			for more := true; more; {
				select {
				case l, ok := <-sub.C:
					if !ok {
						rc.Flush()
						return
					}
					w.Write(l)
				default:
					more = false
				}
			}
			if err := rc.Flush(); err != nil {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

func (a *API) metricsHandler(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	a.srv.Metrics().WriteTo(w)
}
