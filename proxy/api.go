package proxy

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
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
// Every request carries the token ("Authorization: Bearer TOKEN"), names the API's own address
// or a loopback name in Host (a web page cannot reach it by DNS rebinding), comes from no other
// origin (Origin, Sec-Fetch-Site: a web page cannot use the user's browser against it), and
// sends JSON if it sends a body. More routes are added with Handle (proxy/fault's Set.Register:
// /faults and /connections/{id}/faults).
type API struct {
	srv   *Server
	in    *Inspector   // may be nil
	hub   *inspect.Hub // may be nil
	mux   *http.ServeMux
	token []byte
	hosts hostSet
	more  []string // the routes added with Handle
}

// APIConfig says who may use the API.
type APIConfig struct {
	// Token is what requests must carry as "Authorization: Bearer TOKEN"; NewAPI generates one
	// when empty (see API.Token).
	Token string
	// Listen is the API's address as the user gave it (host:port): Host must name its host, or
	// a loopback name or address. A wildcard host (0.0.0.0, ::, empty) also admits any IP
	// address and this machine's name.
	Listen string
}

// NewAPI returns the control API of srv; in and hub may be nil (no state details, no events).
func NewAPI(srv *Server, in *Inspector, hub *inspect.Hub, cfg APIConfig) *API {
	if cfg.Token == "" {
		cfg.Token = rand.Text()
	}
	a := &API{srv: srv, in: in, hub: hub, mux: http.NewServeMux(), token: []byte(cfg.Token), hosts: newHostSet(cfg.Listen)}
	a.mux.HandleFunc("GET /connections", a.list)
	a.mux.HandleFunc("GET /connections/{id}", a.get)
	a.mux.HandleFunc("POST /connections/{id}/close", a.close)
	a.mux.HandleFunc("DELETE /connections/{id}", a.close)
	a.mux.HandleFunc("GET /events", a.events)
	a.mux.HandleFunc("GET /metrics", a.metricsHandler)
	a.mux.HandleFunc("GET /{$}", a.index)
	return a
}

// Token returns the token requests must carry.
func (a *API) Token() string { return string(a.token) }

// Handle adds a route; the index lists it.
func (a *API) Handle(pattern string, h http.Handler) {
	a.mux.Handle(pattern, h)
	a.more = append(a.more, pattern)
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if code, msg := a.admit(r); code != 0 {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mqscope"`)
		}
		apiError(w, code, msg)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// admit checks who is asking; it returns the status and message of a refusal, 0 when admitted.
func (a *API) admit(r *http.Request) (int, string) {
	if !a.hosts.allows(r.Host) {
		return http.StatusMisdirectedRequest, fmt.Sprintf("Host %q is not this API's address: use the address it listens on or a loopback name", r.Host)
	}
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
		return http.StatusForbidden, fmt.Sprintf("requests from other origins are refused (Origin %q)", o)
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return http.StatusForbidden, fmt.Sprintf("requests from other sites are refused (Sec-Fetch-Site %q)", site)
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), a.token) != 1 {
		return http.StatusUnauthorized, `missing or wrong token: send "Authorization: Bearer TOKEN" (the token mqscope printed at start, or --api-token)`
	}
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			return http.StatusUnsupportedMediaType, fmt.Sprintf("body: want Content-Type application/json, got %q", r.Header.Get("Content-Type"))
		}
	}
	return 0, ""
}

// hostSet is the names a request's Host may give.
type hostSet struct {
	name     string // the listen address's host, lower case, brackets removed
	wildcard bool   // listening on every address
	machine  string // this machine's name, for a wildcard listener
}

func newHostSet(listen string) hostSet {
	h := listen
	if host, _, err := net.SplitHostPort(listen); err == nil {
		h = host
	}
	h = strings.ToLower(strings.Trim(h, "[]"))
	hs := hostSet{name: h}
	if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
		hs.wildcard = true
		hs.machine, _ = os.Hostname()
		hs.machine = strings.ToLower(hs.machine)
	}
	return hs
}

func (hs hostSet) allows(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.ToLower(strings.Trim(h, "[]"))
	if h == "" {
		return false
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") || h == hs.name {
		return true
	}
	if ip := net.ParseIP(h); ip != nil {
		// An address is no DNS name a web page could rebind.
		return ip.IsLoopback() || hs.wildcard || ip.Equal(net.ParseIP(hs.name))
	}
	return hs.wildcard && hs.machine != "" && h == hs.machine
}

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
	enc.SetEscapeHTML(false) // as every JSON mqscope writes (internal/jsonstr)
	enc.Encode(v)
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// WriteJSON answers with v, as the API's own routes do (for routes added with Handle).
func WriteJSON(w http.ResponseWriter, code int, v any) { writeJSON(w, code, v) }

// WriteError answers {"error": msg}, as the API's own routes do.
func WriteError(w http.ResponseWriter, code int, msg string) { apiError(w, code, msg) }

func (a *API) index(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"listen":   a.srv.Addr().String(),
		"upstream": a.srv.Upstream().String(),
		"endpoints": append([]string{"GET /connections", "GET /connections/{id}", "POST /connections/{id}/close",
			"DELETE /connections/{id}", "GET /events", "GET /metrics"}, a.more...),
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
	ReasonString *string          `json:"reason_string"`
}

// maxReasonString bounds the reason string of a close request, whatever the device allows.
const maxReasonString = 1024

// parseReasonCode accepts 152, "152" or "0x98".
func parseReasonCode(s string) (decode.ReasonCode, error) {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	v, err := strconv.ParseUint(s, 0, 8)
	if err != nil {
		return 0, errors.New("reason_code: want a number from 0 to 255, such as 0x98")
	}
	return decode.ReasonCode(v), nil
}

// closeArgs reads the reason code and string of a close request from its query and its JSON
// body (which wins), strictly: no unknown fields, nothing after the object.
func closeArgs(w http.ResponseWriter, r *http.Request) (rc *decode.ReasonCode, reasonString string, err error) {
	q := r.URL.Query()
	reasonString = q.Get("reason_string")
	if s := q.Get("reason_code"); s != "" {
		c, err := parseReasonCode(s)
		if err != nil {
			return nil, "", err
		}
		rc = &c
	}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return rc, reasonString, nil
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	var req closeRequest
	if err := dec.Decode(&req); errors.Is(err, io.EOF) {
		return rc, reasonString, nil
	} else if err != nil {
		return nil, "", fmt.Errorf("body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, "", errors.New("body: data after the JSON object")
	}
	if req.ReasonCode != nil {
		c, err := parseReasonCode(string(*req.ReasonCode))
		if err != nil {
			return nil, "", err
		}
		rc = &c
	}
	if req.ReasonString != nil {
		reasonString = *req.ReasonString
	}
	return rc, reasonString, nil
}

// CheckDisconnect says what is wrong with a DISCONNECT the proxy would send a device that
// accepts packets up to maxPacket bytes (0: no limit), as POST /connections/{id}/close checks it;
// nil when nothing.
func CheckDisconnect(rc decode.ReasonCode, reasonString string, maxPacket int) error {
	return checkDisconnect(rc, reasonString, maxPacket)
}

// checkDisconnect says what is wrong with a DISCONNECT the proxy would send with rc and
// reasonString to a device that accepts packets up to maxPacket bytes (0: no limit); nil when
// nothing.
func checkDisconnect(rc decode.ReasonCode, reasonString string, maxPacket int) error {
	switch {
	case !rc.AllowedIn(decode.DISCONNECT):
		return fmt.Errorf("reason_code %s is not a DISCONNECT reason code", rc)
	case rc.DisconnectSender() == decode.ByClient:
		return fmt.Errorf("reason_code %s: only a client may send it in DISCONNECT", rc)
	case len(reasonString) > maxReasonString:
		return fmt.Errorf("reason_string: %d bytes, over the limit of %d", len(reasonString), maxReasonString)
	case !decode.ValidUTF8([]byte(reasonString)):
		return errors.New("reason_string: not a string MQTT allows (ill-formed UTF-8 or U+0000) [MQTT-1.5.4-2]")
	}
	if maxPacket > 0 {
		b, err := disconnectFrame(rc, reasonString)
		if err != nil {
			return fmt.Errorf("DISCONNECT: %w", err)
		}
		if len(b) > maxPacket {
			return fmt.Errorf("reason_string: the DISCONNECT would be %d bytes, over the device's Maximum Packet Size of %d [MQTT-3.14.2-3]", len(b), maxPacket)
		}
	}
	return nil
}

func (a *API) close(w http.ResponseWriter, r *http.Request) {
	st, ok := a.find(w, r)
	if !ok {
		return
	}
	rc, reasonString, err := closeArgs(w, r)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if rc == nil && reasonString != "" {
		c := decode.AdministrativeAction
		rc = &c
	}
	if rc != nil {
		maxPacket := 0
		if v := a.view(st); v.MQTT != nil && v.MQTT.Requested.MaximumPacketSize != nil {
			maxPacket = int(*v.MQTT.Requested.MaximumPacketSize)
		}
		if err := checkDisconnect(*rc, reasonString, maxPacket); err != nil {
			apiError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	done, err := a.srv.CloseConn(st.ID, rc, reasonString)
	if err != nil {
		apiError(w, http.StatusNotFound, err.Error())
		return
	}
	res := map[string]any{"closed": st.ID, "disconnect_sent": done.Disconnect, "done": done.Done}
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
	// The filter runs and the lines are rendered here, on this stream's goroutine: the hub
	// only queues records.
	var buf []byte
	for {
		select {
		case rec, ok := <-sub.C:
			if !ok {
				return
			}
			buf = sub.Line(buf[:0], rec)
			// Add what else is queued before writing and flushing.
			for more := len(buf) < 64<<10; more; {
				select {
				case rec, ok := <-sub.C:
					if !ok {
						w.Write(buf)
						rc.Flush()
						return
					}
					buf = sub.Line(buf, rec)
					more = len(buf) < 64<<10
				default:
					more = false
				}
			}
			if len(buf) == 0 {
				continue
			}
			if _, err := w.Write(buf); err != nil {
				return
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
