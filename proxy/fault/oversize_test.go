package fault

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// TestOversizeUserProperty: in=user_property grows a PUBLISH to exactly the size asked by a
// User Property, its payload and other properties unchanged; where no packet has that size (the
// Remaining Length taking another byte), one byte more, said.
func TestOversizeUserProperty(t *testing.T) {
	view := negotiated(t, nil)
	in := pub(t, "a/b", 1, 3, decode.Properties{decode.StrProp(decode.PropContentType, "text/plain")}, "hello")
	for _, size := range []int{len(in) + 1, 60, 129, 130, 131, 200, 16385, 16386, 16387, 70000} {
		out, applied, err := run(t, view, []string{fmt.Sprintf("oversize in=user_property size=%d", size)}, []dirFrame{{stream.C2S, in}})
		if err != nil || len(out[stream.C2S]) != 1 || len(applied) != 1 {
			t.Fatalf("size %d: %v, %d frames, %v", size, err, len(out[stream.C2S]), applied)
		}
		b := out[stream.C2S][0]
		switch did := applied[0].Did; {
		case size < len(in)+21: // a User Property adds at least 21 bytes here
			if len(b) != len(in)+21 || !strings.Contains(did, "a User Property makes it at least") {
				t.Errorf("size %d: got %d bytes (%s)", size, len(b), did)
			}
		case len(b) != size && (len(b) != size+1 || !strings.Contains(did, fmt.Sprintf("no packet has %d", size))):
			t.Errorf("size %d: got %d bytes (%s)", size, len(b), did)
		}
		p := decode5(b).(*decode.Publish)
		ct, _ := p.Properties.String(decode.PropContentType)
		if len(p.Info().Problems) > 0 || string(p.Payload) != "hello" || p.Topic != "a/b" || p.PacketID != 3 || ct != "text/plain" {
			t.Errorf("size %d: %+v", size, p)
		}
		if want := 2 + (size-len(in))/0x10000; len(p.Properties) != want || p.Properties[1].ID != decode.PropUserProperty {
			t.Errorf("size %d: properties %+v", size, p.Properties)
		}
	}
}

// TestOversizeBody: body=max_payload+1 grows the payload to one byte over what the profile in
// use accepts (apsaramq: 64 KB); with no profile, max_payload is 0 and nothing is grown.
func TestOversizeBody(t *testing.T) {
	prof, err := inspect.LoadProfile("apsaramq")
	if err != nil {
		t.Fatal(err)
	}
	c := inspect.NewConn(1, "127.0.0.1:1", "127.0.0.1:2", inspect.Options{MaxFrame: 1 << 20, Profile: prof})
	c.Feed(stream.C2S, time.Unix(0, 0), enc(t, &decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "d", KeepAlive: 30}))
	c.Feed(stream.S2C, time.Unix(0, 0), enc(t, &decode.Connack{Base: v5}))
	in := pub(t, "a", 0, 0, nil, "x")
	out, applied, err := run(t, c.View(), []string{"oversize body=max_payload+1"}, []dirFrame{{stream.C2S, in}})
	if err != nil || len(out[stream.C2S]) != 1 {
		t.Fatalf("%v %v", err, out)
	}
	p := decode5(out[stream.C2S][0]).(*decode.Publish)
	if len(p.Payload) != prof.MaxPayload+1 || prof.MaxPayload != 64*1024 || applied[0].Used != "max_payload+1 = 65537 with max_payload=65536" {
		t.Errorf("payload %d bytes, profile %d, used %q", len(p.Payload), prof.MaxPayload, applied[0].Used)
	}
	out, _, _ = run(t, negotiated(t, nil), []string{"oversize body=max_payload+1"}, []dirFrame{{stream.C2S, in}})
	if len(out[stream.C2S]) != 1 || !bytes.Equal(out[stream.C2S][0], in) {
		t.Errorf("without a profile: % x", out[stream.C2S])
	}
	for _, bad := range []string{"oversize body=10 size=20", "oversize in=user_property body=10", "oversize in=header size=10"} {
		if _, err := Parse(bad, 1); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
