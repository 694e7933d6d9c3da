package inspect

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect/payload"
	"github.com/mqscope/mqscope/stream"
)

// TestUnreadConnectFields: a CONNECT whose properties are malformed ends before its Client
// Identifier, keep alive is read but nothing after it. The fields never decoded are left out
// of every output, not shown as "" or 0, and raise no finding (an accepting CONNACK without an
// Assigned Client Identifier is not "an empty Client Identifier").
func TestUnreadConnectFields(t *testing.T) {
	s := newSession(t, Options{})
	connect := []byte{
		0x10, 0x0e, // CONNECT, remaining length 14
		0x00, 0x04, 'M', 'Q', 'T', 'T',
		0x05,       // MQTT 5
		0x02,       // Clean Start
		0x00, 0x3c, // keep alive 60
		0x03,             // property length 3
		0x11, 0x00, 0x00, // Session Expiry Interval needs 4 bytes: the packet ends inside it
	}
	recs := s.c.Feed(stream.C2S, t0, connect)
	recs = append(recs, s.s2c(&decode.Connack{}))
	cr := recs[0].(*PacketRecord)
	if cr.Type() != decode.CONNECT {
		t.Fatalf("first record %s", cr.Type())
	}
	for _, r := range recs {
		for _, n := range r.(*PacketRecord).Notes {
			if strings.Contains(n.Text, "Client Identifier") {
				t.Errorf("%s: %s %s", r.(*PacketRecord).Type(), n.Rule, n.Text)
			}
		}
	}
	var text, js bytes.Buffer
	render(NewTextWriter(&text, TextOptions{Payload: payload.Preview}), recs[:1])
	render(NewJSONWriter(&js, JSONOptions{}), recs[:1])
	if strings.Contains(text.String(), "client_id=") || !strings.Contains(text.String(), "keep_alive=60") {
		t.Errorf("text: %s", text.String())
	}
	if strings.Contains(js.String(), "connect_client_id") || !strings.Contains(js.String(), `"keep_alive":60`) {
		t.Errorf("JSON: %s", js.String())
	}
	var detail bytes.Buffer
	if err := WriteDetail(&detail, 1, 0, cr.Packet, DetailOptions{}); err != nil || strings.Contains(detail.String(), "  client_id ") {
		t.Errorf("detail (%v): %s", err, detail.String())
	}
}
