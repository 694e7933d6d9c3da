package proxy

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
)

// Routes adds the intercept to the control API:
//
//	GET  /intercept                  the filter and the held packets
//	PUT  /intercept                  {"filter": EXPR} holds what matches from now on; "" stops
//	GET  /intercept/held             the held packets, oldest first
//	POST /intercept/held/{id}/forward
//	POST /intercept/held/{id}/drop
//	POST /intercept/held/{id}/edit   FieldEdit's fields ({"payload": "...", "topic": ...}), or
//	                                 {"hex": "30 0d ..."} the whole packet; the answer has the
//	                                 warnings (negotiated limits the edit breaks). The body may
//	                                 hold a packet as large as the proxy holds (StageMaxFrame)
//	                                 in spaced hex; a larger one is answered 413.
//	POST /intercept/forward_all
func (ic *Intercept) Routes(a *API) {
	a.Handle("GET /intercept", http.HandlerFunc(ic.apiGet))
	a.Handle("PUT /intercept", http.HandlerFunc(ic.apiSetFilter))
	a.Handle("GET /intercept/held", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, ic.heldViews())
	}))
	a.Handle("POST /intercept/held/{id}/forward", ic.decide(ic.Forward))
	a.Handle("POST /intercept/held/{id}/drop", ic.decide(ic.Drop))
	frameMax := 1 << 20
	if a.srv != nil {
		frameMax = a.srv.cfg.StageMaxFrame
	}
	a.Handle("POST /intercept/held/{id}/edit", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ic.apiEdit(w, r, editBodyMax(frameMax))
	}))
	a.Handle("POST /intercept/forward_all", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int{"forwarded": ic.ForwardAll()})
	}))
}

// heldView is a held packet in the API.
type heldView struct {
	ID       uint64    `json:"id"`
	Conn     int       `json:"conn"`
	ClientID string    `json:"client_id"`
	Dir      string    `json:"dir"`
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	Size     int       `json:"size"`
	Topic    *string   `json:"topic,omitempty"`
	Payload  *string   `json:"payload,omitempty"` // when it is UTF-8
	Hex      string    `json:"hex"`
	Edited   bool      `json:"edited"`
	Original string    `json:"original_hex,omitempty"`
	Redacted bool      `json:"redacted,omitempty"` // hex left out: a password or authentication data
	Warnings []string  `json:"warnings,omitempty"`
}

func (ic *Intercept) heldViews() []heldView {
	out := []heldView{}
	for _, h := range ic.Held() {
		v := heldView{ID: h.ID, Conn: h.Conn, ClientID: h.ClientID, Dir: h.Dir.String(), Time: h.Time.UTC(),
			Size: len(h.Raw), Edited: h.Edited, Warnings: h.Warnings}
		p := decode.DecodeWith(h.Raw, h.Version, decode.Options{Lean: true})
		v.Type = p.Type().String()
		if !ic.ShowSecrets && (inspect.HasSecret(p) || h.Edited && inspect.HasSecret(decode.DecodeWith(h.Original, h.Version, decode.Options{Lean: true}))) {
			v.Redacted = true // the secret is never put in hex
			out = append(out, v)
			continue
		}
		v.Hex = hex.EncodeToString(h.Raw)
		if q, ok := p.(*decode.Publish); ok {
			topic := q.Topic
			v.Topic = &topic
			if decode.ValidUTF8(q.Payload) {
				s := string(q.Payload)
				v.Payload = &s
			}
		}
		if h.Edited {
			v.Original = hex.EncodeToString(h.Original)
		}
		out = append(out, v)
	}
	return out
}

func (ic *Intercept) apiGet(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"filter": ic.Filter(), "held": ic.heldViews()})
}

// filterBodyMax bounds the body of PUT /intercept.
const filterBodyMax = 1 << 20

// editBodyMax bounds the body of an edit: a replacement of a frame as large as the proxy holds
// (frameMax, Config.StageMaxFrame) in hex with a space between bytes (3 characters a byte),
// and 64 KiB for the rest of the JSON.
func editBodyMax(frameMax int) int64 { return 3*int64(frameMax) + 64<<10 }

// decodeBody reads r's JSON body, of at most max bytes, into v strictly: no unknown fields,
// nothing after it.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, max int64) error {
	if r.Body == nil || r.Body == http.NoBody {
		return errors.New("body: want a JSON object")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("body: data after the JSON object")
	}
	return nil
}

// bodyError answers err from decodeBody: 413 for a body over its limit, saying the limit, else
// 400.
func bodyError(w http.ResponseWriter, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		apiError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body: larger than the %d-byte limit", tooLarge.Limit))
		return
	}
	apiError(w, http.StatusBadRequest, err.Error())
}

func (ic *Intercept) apiSetFilter(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Filter *string `json:"filter"`
	}
	if err := decodeBody(w, r, &req, filterBodyMax); err != nil {
		bodyError(w, err)
		return
	}
	if req.Filter == nil {
		apiError(w, http.StatusBadRequest, `body: want {"filter": EXPR} ("" stops intercepting)`)
		return
	}
	if err := ic.SetFilter(*req.Filter); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"filter": ic.Filter(), "held": ic.heldViews()})
}

func heldID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		apiError(w, http.StatusBadRequest, "held packet id: want a number")
		return 0, false
	}
	return id, true
}

// decide is the handler of forward and drop.
func (ic *Intercept) decide(act func(uint64) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := heldID(w, r)
		if !ok {
			return
		}
		if err := act(id); err != nil {
			apiError(w, http.StatusNotFound, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]uint64{"id": id})
	})
}

// editRequest is the body of POST /intercept/held/{id}/edit.
type editRequest struct {
	FieldEdit
	Hex *string `json:"hex,omitempty"`
}

// apiEdit answers an edit, whose body may have up to max bytes.
func (ic *Intercept) apiEdit(w http.ResponseWriter, r *http.Request, max int64) {
	id, ok := heldID(w, r)
	if !ok {
		return
	}
	var req editRequest
	if err := decodeBody(w, r, &req, max); err != nil {
		bodyError(w, err)
		return
	}
	var warnings []string
	var err error
	if req.Hex != nil {
		if !req.FieldEdit.empty() {
			apiError(w, http.StatusBadRequest, "hex replaces the whole packet: give it alone")
			return
		}
		b, herr := hex.DecodeString(strings.Join(strings.Fields(*req.Hex), ""))
		if herr != nil {
			apiError(w, http.StatusBadRequest, "hex: "+herr.Error())
			return
		}
		warnings, err = ic.Replace(id, b)
	} else {
		warnings, err = ic.Edit(id, req.FieldEdit)
	}
	switch {
	case errors.Is(err, ErrNotHeld):
		apiError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	for _, v := range ic.heldViews() {
		if v.ID == id {
			writeJSON(w, http.StatusOK, map[string]any{"held": v, "warnings": warnings})
			return
		}
	}
	// Released between the edit and now.
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "warnings": warnings})
}
