package replay

import (
	"bytes"
	"testing"

	"github.com/mqscope/mqscope/decode"
)

// TestSpliceClientID: --client-id changes the Client Identifier of the captured CONNECT and
// its Remaining Length, and no other byte: a CONNECT malformed elsewhere stays malformed.
func TestSpliceClientID(t *testing.T) {
	v5 := decode.Base{Version: decode.V5}
	good, err := decode.Encode(nil, &decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: "old",
		HasUsername: true, Username: "u", Properties: decode.Properties{decode.IntProp(decode.PropSessionExpiry, 60)}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := decode.Encode(nil, &decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: "a-much-longer-identifier",
		HasUsername: true, Username: "u", Properties: decode.Properties{decode.IntProp(decode.PropSessionExpiry, 60)}})
	if err != nil {
		t.Fatal(err)
	}
	got, old, err := spliceClientID(good, decode.V5, "a-much-longer-identifier")
	if err != nil || old != "old" || !bytes.Equal(got, want) {
		t.Fatalf("spliced % X (%q, %v)\nwant % X", got, old, err, want)
	}

	// The reserved bit of the Connect Flags set (malformed, MQTT-3.1.2-3): it stays set.
	bad := bytes.Clone(good)
	bad[9] |= 0x01 // fixed header 2, protocol name 6, level 1: the flags
	if len(decode.Decode(bad, decode.V5).Info().Problems) == 0 {
		t.Fatal("the test CONNECT is not malformed")
	}
	got, _, err = spliceClientID(bad, decode.V5, "new")
	if err != nil {
		t.Fatal(err)
	}
	c := decode.Decode(got, decode.V5).(*decode.Connect)
	if c.ClientID != "new" || got[9]&0x01 == 0 || len(c.Problems) == 0 {
		t.Errorf("spliced into a malformed CONNECT: id %q, flags %#x, problems %v", c.ClientID, got[9], c.Problems)
	}
	// The identifier is bytes 18-22 (after the fixed header, protocol name, level, flags, keep
	// alive and 6 bytes of properties): "old" and "new" are as long, so all else is equal.
	if !bytes.Equal(got[:18], bad[:18]) || !bytes.Equal(got[23:], bad[23:]) {
		t.Errorf("bytes around the identifier changed:\n% X\n% X", got, bad)
	}

	// Cut before its Client Identifier: an error, nothing invented.
	if _, _, err := spliceClientID(good[:12], decode.V5, "x"); err == nil {
		t.Error("a CONNECT cut before its Client Identifier was spliced")
	}
}
