package ui

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// fakeActions records what the screens asked of the proxy.
type fakeActions struct {
	calls []string
	held  []Held
}

func (f *fakeActions) Live() bool  { return true }
func (f *fakeActions) Why() string { return "" }
func (f *fakeActions) Faults() []FaultSpec {
	return []FaultSpec{
		{Name: "oversize", Params: "size=EXPR", Help: "grow a PUBLISH's payload so the packet is exactly EXPR bytes", Rule: "oversize size=max_packet_size+1"},
		{Name: "drop", Help: "drop the frame (e.g. type=PUBACK)"},
	}
}
func (f *fakeActions) log(format string, args ...any) error {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return nil
}
func (f *fakeActions) Fault(conn int, rule string) error { return f.log("fault %d %s", conn, rule) }
func (f *fakeActions) Disconnect(conn int, rc decode.ReasonCode, text string) error {
	return f.log("disconnect %d 0x%02X %q", conn, byte(rc), text)
}
func (f *fakeActions) Reset(conn int) error          { return f.log("reset %d", conn) }
func (f *fakeActions) Intercept(filter string) error { return f.log("intercept %s", filter) }
func (f *fakeActions) Held() []Held                  { return f.held }
func (f *fakeActions) Forward(id uint64) error       { return f.log("forward %d", id) }
func (f *fakeActions) ForwardAll() error             { return f.log("forward all") }
func (f *fakeActions) Drop(id uint64) error          { return f.log("drop %d", id) }
func (f *fakeActions) Edit(id uint64, raw []byte) error {
	return f.log("edit %d % x", id, raw)
}
func (f *fakeActions) Notify(func()) {}

func (f *fakeActions) want(t *testing.T, calls ...string) {
	t.Helper()
	if strings.Join(f.calls, "\n") != strings.Join(calls, "\n") {
		t.Errorf("actions:\n%s\nwant:\n%s", strings.Join(f.calls, "\n"), strings.Join(calls, "\n"))
	}
	f.calls = nil
}

// TestActions: the palette applies the chosen rule, edited, to the selected packet's
// connection; X sends the reason code picked with the reason string typed; R resets after
// asking; intercept sets its filter and I toggles it.
func TestActions(t *testing.T) {
	act := &fakeActions{}
	h := newTestUI(t, fixtureModel(t), act, 120, 36)
	h.press("G") // a packet of connection 2
	h.press("!")
	if !strings.Contains(h.text(), "oversize    grow a PUBLISH's payload") {
		t.Fatalf("no palette:\n%s", h.text())
	}
	h.press("<enter>")
	if !strings.Contains(h.status(), "granted: max_packet_size=no limit receive_maximum=65535") {
		t.Errorf("the palette does not say the negotiated values: %q", h.status())
	}
	h.press(" count=1", "<enter>")
	act.want(t, "fault 2 oversize size=max_packet_size+1 count=1")
	if !strings.Contains(h.status(), "connection 2: fault oversize size=max_packet_size+1 count=1 applied") {
		t.Errorf("status %q", h.status())
	}

	// DISCONNECT: the codes a server sends: 0x00, then 0x80 (0x04 is the client's); pick
	// 0x80.
	h.press("X")
	if strings.Contains(h.text(), "0x04") || !strings.Contains(h.text(), "0x8B Server shutting down") {
		t.Errorf("the reason codes offered:\n%s", h.text())
	}
	h.press("<down>", "<enter>", "bye", "<enter>")
	act.want(t, `disconnect 2 0x80 "bye"`)

	h.press("R", "<enter>") // the modal's first button: Yes
	act.want(t, "reset 2")
	h.press("R", "<tab>", "<enter>") // No
	act.want(t)

	h.press("i", `type == "PUBLISH"`, "<enter>")
	h.press("I", "I")
	act.want(t, `intercept type == "PUBLISH"`, "intercept ", `intercept type == "PUBLISH"`)
	if !strings.Contains(h.text(), `intercepting: type == "PUBLISH"`) {
		t.Errorf("header does not say intercepting:\n%s", h.text())
	}
}

// TestHeld: held packets are listed; a forwards, D drops, A forwards all, E edits the bytes
// and e the fields of a PUBLISH, re-encoded.
func TestHeld(t *testing.T) {
	raw, _ := decode.Encode(nil, &decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: "a/b", Payload: []byte("hi")})
	act := &fakeActions{held: []Held{{ID: 7, Conn: 1, Dir: stream.C2S, Raw: raw}, {ID: 8, Conn: 1, Dir: stream.C2S, Raw: raw}}}
	h := newTestUI(t, fixtureModel(t), act, 120, 36)
	h.press("5")
	if !strings.Contains(h.text(), "7 1 → PUBLISH") && !strings.Contains(h.text(), "7  1 → PUBLISH") {
		t.Errorf("held list:\n%s", h.text())
	}
	h.press("a", "<down>", "D", "A")
	act.want(t, "forward 7", "drop 8", "forward all")
	h.press("<up>", "E", "<enter>")
	act.want(t, fmt.Sprintf("edit 7 % x", raw))
	// e: a form; the payload field is the fourth; replace "hi" with "hello".
	h.press("e", "<tab>", "<tab>", "<tab>", "<backspace>", "<backspace>", "hello", "<tab>", "<enter>")
	want, _ := decode.Encode(nil, &decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: "a/b", Payload: []byte("hello")})
	act.want(t, fmt.Sprintf("edit 7 % x", want))
}

// TestQuit: q quits at once on a file; on a live proxy with open connections it asks.
func TestQuit(t *testing.T) {
	h := newTestUI(t, fixtureModel(t), nil, 120, 36)
	h.press("q")
	if !h.stopped {
		t.Error("q on a file did not quit")
	}
	h = newTestUI(t, fixtureModel(t), &fakeActions{}, 120, 36)
	h.press("q")
	if h.stopped || !strings.Contains(h.text(), "Quit? The proxy will drop 1 open") {
		t.Fatalf("q on a live proxy did not ask:\n%s", h.text())
	}
	h.press("<enter>")
	if !h.stopped {
		t.Error("Yes did not quit")
	}
}
