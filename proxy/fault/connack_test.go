package fault

import (
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// TestConnackEveryValue: every value a CONNACK grants is rewritten, re-encoded with the lengths
// its contents take (the Remaining Length and the Property Length agree with the bytes), the
// properties there replaced in place and the others appended.
func TestConnackEveryValue(t *testing.T) {
	ack := enc(t, &decode.Connack{Base: v5, Properties: decode.Properties{
		decode.IntProp(decode.PropReceiveMaximum, 20),
		decode.StrProp(decode.PropAssignedClientID, "auto-1"),
		decode.IntProp(decode.PropServerKeepAlive, 60),
		decode.UserProp("k", "v"),
	}})
	rule := `connack session_present=1 wildcard_subscription_available=0 subscription_identifier_available=0 ` +
		`shared_subscription_available=0 server_keep_alive=0 session_expiry_interval=0xFFFFFFFF ` +
		`assigned_client_identifier="a much longer identifier" reason_string="rewritten by mqscope" receive_maximum=absent`
	out, applied, err := run(t, inspect.View{}, []string{rule}, []dirFrame{{stream.S2C, ack}})
	if err != nil {
		t.Fatal(err)
	}
	b := out[stream.S2C][0]
	h, ok, herr := decode.ParseHeader(b)
	if !ok || herr != nil || h.HeaderLen+h.RemainingLength != len(b) {
		t.Fatalf("header %+v for %d bytes", h, len(b))
	}
	p := decode5(b).(*decode.Connack)
	if len(p.Info().Problems) > 0 {
		t.Fatalf("problems %v", p.Info().Problems)
	}
	var ids []decode.PropID
	for _, pr := range p.Properties {
		ids = append(ids, pr.ID)
	}
	// Assigned Client Identifier and Server Keep Alive in place, Receive Maximum removed, the
	// rest appended in the order of their identifiers.
	want := []decode.PropID{decode.PropAssignedClientID, decode.PropServerKeepAlive, decode.PropUserProperty,
		decode.PropSessionExpiry, decode.PropReasonString, decode.PropWildcardSubAvailable, decode.PropSubIDAvailable, decode.PropSharedSubAvailable}
	if len(ids) != len(want) {
		t.Fatalf("properties %v, want %v", ids, want)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("properties %v, want %v", ids, want)
		}
	}
	ps := p.Properties
	ints := map[decode.PropID]uint32{decode.PropServerKeepAlive: 0, decode.PropSessionExpiry: 0xFFFFFFFF,
		decode.PropWildcardSubAvailable: 0, decode.PropSubIDAvailable: 0, decode.PropSharedSubAvailable: 0}
	for id, n := range ints {
		if got, ok := ps.Int(id); !ok || got != n {
			t.Errorf("%s = %d (present %v), want %d", id.Name(), got, ok, n)
		}
	}
	id, _ := ps.String(decode.PropAssignedClientID)
	rs, _ := ps.String(decode.PropReasonString)
	if id != "a much longer identifier" || rs != "rewritten by mqscope" || !p.SessionPresent || ps.Has(decode.PropReceiveMaximum) {
		t.Errorf("got %+v", p)
	}
	if len(applied) != 1 || applied[0].Malformed ||
		!strings.Contains(applied[0].Did, `Assigned Client Identifier "auto-1" → "a much longer identifier"`) ||
		!strings.Contains(applied[0].Did, "Receive Maximum 20 → absent") || !strings.Contains(applied[0].Did, "Server Keep Alive 60 → 0") ||
		!strings.Contains(applied[0].Did, "Session Present 0 → 1") {
		t.Errorf("applied %+v", applied)
	}
}

// TestConnackReasonsAndMalformed: the reason code and the combinations the standard forbids
// are sent as asked; the fault says which are malformed, from decoding what it sends.
func TestConnackReasonsAndMalformed(t *testing.T) {
	v5ack := enc(t, &decode.Connack{Base: v5, Properties: decode.Properties{decode.IntProp(decode.PropMaximumPacketSize, 1000)}})
	v311ack := enc(t, &decode.Connack{Base: decode.Base{Version: decode.V311}})
	c311 := inspect.NewConn(1, "127.0.0.1:1", "127.0.0.1:2", inspect.Options{MaxFrame: 1 << 20})
	c311.Feed(stream.C2S, time.Unix(0, 0), enc(t, &decode.Connect{Base: decode.Base{Version: decode.V311}, ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "old"}))
	view311 := c311.View()
	for _, tc := range []struct {
		name, rule string
		ack        []byte
		malformed  string // in Did, "" when not malformed
		check      func(p *decode.Connack) bool
	}{
		{"use another server", `connack reason=0x9C server_reference="other.example:1883"`, v5ack, "", func(p *decode.Connack) bool {
			s, _ := p.Properties.String(decode.PropServerReference)
			return p.ReasonCode == 0x9C && s == "other.example:1883"
		}},
		{"server moved", `connack reason=0x9D server_reference=b:1883 reason_string=moved`, v5ack, "", func(p *decode.Connack) bool {
			return p.ReasonCode == 0x9D && p.Properties.Has(decode.PropServerReference) && p.Properties.Has(decode.PropReasonString)
		}},
		{"session present with a refusal", "connack reason=0x87 session_present=1", v5ack, "Session Present is 1 in a CONNACK that refuses", func(p *decode.Connack) bool {
			return p.ReasonCode == 0x87 && p.SessionPresent
		}},
		{"maximum qos 2", "connack maximum_qos=2", v5ack, "Maximum QoS is 2", func(p *decode.Connack) bool {
			n, _ := p.Properties.Int(decode.PropMaximumQoS)
			return n == 2
		}},
		{"not a connack reason", "connack reason=0x04", v5ack, "not allowed in CONNACK", func(p *decode.Connack) bool { return p.ReasonCode == 4 }},
		{"max packet size 0 removes", "connack max_packet_size=0", v5ack, "", func(p *decode.Connack) bool {
			return !p.Properties.Has(decode.PropMaximumPacketSize)
		}},
		{"3.1.1 session present", "connack session_present=1 maximum_qos=0", v311ack, "", func(p *decode.Connack) bool {
			return p.SessionPresent && len(p.Properties) == 0
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			view, ver := inspect.View{}, decode.V5
			if tc.ack[1] == 2 { // a 3.1.1 CONNACK's Remaining Length
				view, ver = view311, decode.V311
			}
			out, applied, err := run(t, view, []string{tc.rule}, []dirFrame{{stream.S2C, tc.ack}})
			if err != nil {
				t.Fatal(err)
			}
			p := decode.Decode(out[stream.S2C][0], ver).(*decode.Connack)
			if !tc.check(p) {
				t.Errorf("got %+v", p)
			}
			if len(applied) != 1 || applied[0].Malformed != (tc.malformed != "") || !strings.Contains(applied[0].Did, tc.malformed) {
				t.Errorf("applied %+v, want malformed %q", applied, tc.malformed)
			}
		})
	}
	t.Run("3.1.1 properties left alone", func(t *testing.T) {
		_, applied, _ := run(t, view311, []string{"connack session_present=1 maximum_qos=0"}, []dirFrame{{stream.S2C, v311ack}})
		if len(applied) != 1 || !strings.Contains(applied[0].Did, "has no properties: maximum_qos left alone") {
			t.Errorf("applied %+v", applied)
		}
	})
	t.Run("value too large for its property", func(t *testing.T) {
		_, _, err := run(t, inspect.View{}, []string{"connack server_keep_alive=70000"}, []dirFrame{{stream.S2C, v5ack}})
		if err == nil || !strings.Contains(err.Error(), "server_keep_alive 70000 does not fit the property (0 to 65535)") {
			t.Errorf("error %v", err)
		}
	})
}
