package decode

import (
	"strings"
	"testing"
)

// TestReasonCodes checks the reason-code table against the standard's section 2.4, copied here
// from /work/shared/reference/apsaramq-mqtt5.md and the seven codes it names separately.
func TestReasonCodes(t *testing.T) {
	const (
		C  = "CONNACK"
		PA = "PUBACK"
		PR = "PUBREC"
		PL = "PUBREL"
		PC = "PUBCOMP"
		S  = "SUBACK"
		U  = "UNSUBACK"
		D  = "DISCONNECT"
		A  = "AUTH"
	)
	want := []struct {
		code    ReasonCode
		name    string
		packets []string
	}{
		{0x00, "Success", []string{C, PA, PR, PL, PC, S, U, D, A}},
		{0x01, "Granted QoS 1", []string{S}},
		{0x02, "Granted QoS 2", []string{S}},
		{0x04, "Disconnect with Will Message", []string{D}},
		{0x10, "No matching subscribers", []string{PA, PR}},
		{0x11, "No subscription existed", []string{U}},
		{0x18, "Continue authentication", []string{A}},
		{0x19, "Re-authenticate", []string{A}},
		{0x80, "Unspecified error", []string{C, PA, PR, S, U, D}},
		{0x81, "Malformed Packet", []string{C, D}},
		{0x82, "Protocol Error", []string{C, D}},
		{0x83, "Implementation specific error", []string{C, PA, PR, S, U, D}},
		{0x84, "Unsupported Protocol Version", []string{C}},
		{0x85, "Client Identifier not valid", []string{C}},
		{0x86, "Bad User Name or Password", []string{C}},
		{0x87, "Not authorized", []string{C, PA, PR, S, U, D}},
		{0x88, "Server unavailable", []string{C}},
		{0x89, "Server busy", []string{C, D}},
		{0x8A, "Banned", []string{C}},
		{0x8B, "Server shutting down", []string{D}},
		{0x8C, "Bad authentication method", []string{C, D}},
		{0x8D, "Keep Alive timeout", []string{D}},
		{0x8E, "Session taken over", []string{D}},
		{0x8F, "Topic Filter invalid", []string{S, U, D}},
		{0x90, "Topic Name invalid", []string{C, PA, PR, D}},
		{0x91, "Packet Identifier in use", []string{PA, PR, S, U}},
		{0x92, "Packet Identifier not found", []string{PL, PC}},
		{0x93, "Receive Maximum exceeded", []string{D}},
		{0x94, "Topic Alias invalid", []string{D}},
		{0x95, "Packet too large", []string{C, D}},
		{0x96, "Message rate too high", []string{D}},
		{0x97, "Quota exceeded", []string{C, PA, PR, S, D}},
		{0x98, "Administrative action", []string{D}},
		{0x99, "Payload format invalid", []string{C, PA, PR, D}},
		{0x9A, "Retain not supported", []string{C, D}},
		{0x9B, "QoS not supported", []string{C, D}},
		{0x9C, "Use another server", []string{C, D}},
		{0x9D, "Server moved", []string{C, D}},
		{0x9E, "Shared Subscriptions not supported", []string{S, D}},
		{0x9F, "Connection rate exceeded", []string{C, D}},
		{0xA0, "Maximum connect time", []string{D}},
		{0xA1, "Subscription Identifiers not supported", []string{S, D}},
		{0xA2, "Wildcard Subscriptions not supported", []string{S, D}},
	}
	if len(want) != 43 || len(ReasonCodes()) != 43 {
		t.Fatalf("%d codes in the test, %d in ReasonCodes(); the standard has 43", len(want), len(ReasonCodes()))
	}
	for i, w := range want {
		if ReasonCodes()[i] != w.code || !w.code.Known() {
			t.Errorf("ReasonCodes()[%d] = %v, want 0x%02X", i, ReasonCodes()[i], byte(w.code))
		}
		if got := w.code.Name(Reserved); got != w.name {
			t.Errorf("0x%02X: Name = %q, want %q", byte(w.code), got, w.name)
		}
		for typ := Reserved; typ <= Will; typ++ {
			allowed := false
			for _, n := range w.packets {
				allowed = allowed || n == typ.String()
			}
			if w.code.AllowedIn(typ) != allowed {
				t.Errorf("0x%02X in %s: AllowedIn = %v, want %v", byte(w.code), typ, !allowed, allowed)
			}
		}
		if len(w.code.Packets()) != len(w.packets) {
			t.Errorf("0x%02X: Packets = %v", byte(w.code), w.code.Packets())
		}
		if w.code.IsError() != (w.code >= 0x80) {
			t.Errorf("0x%02X: IsError", byte(w.code))
		}
	}
	if ReasonCode(0x03).Known() || ReasonCode(0x03).AllowedIn(PUBACK) || !strings.Contains(ReasonCode(0x03).Name(PUBACK), "Unknown") {
		t.Errorf("0x03 is not a reason code")
	}
	if Success.Name(DISCONNECT) != "Normal disconnection" || Success.Name(SUBACK) != "Granted QoS 0" || Success.Name(PUBACK) != "Success" {
		t.Errorf("names of 0x00")
	}
	if DisconnectWithWill.DisconnectSender() != ByClient || ServerShuttingDown.DisconnectSender() != ByServer ||
		MalformedPacket.DisconnectSender() != ByEither {
		t.Errorf("DisconnectSender")
	}
	if NotAuthorized.String() != "0x87 Not authorized" {
		t.Errorf("String = %q", NotAuthorized.String())
	}
	for _, c := range []struct {
		v    Version
		t    Type
		c    ReasonCode
		name string
	}{
		{V311, CONNACK, 0, "Connection Accepted"},
		{V311, CONNACK, 1, "Connection Refused, unacceptable protocol version"},
		{V311, CONNACK, 5, "Connection Refused, not authorized"},
		{V311, CONNACK, 6, "Reserved return code 6"},
		{V311, SUBACK, 2, "Success - Maximum QoS 2"},
		{V311, SUBACK, 0x80, "Failure"},
		{V31, SUBACK, 3, "Reserved return code 0x03"},
		{V5, CONNACK, 0x84, "Unsupported Protocol Version"},
		{V5, DISCONNECT, 0, "Normal disconnection"},
	} {
		if got := ReasonName(c.v, c.t, c.c); got != c.name {
			t.Errorf("ReasonName(%v, %v, 0x%02X) = %q, want %q", c.v, c.t, byte(c.c), got, c.name)
		}
	}
}

func TestTypesAndVersions(t *testing.T) {
	for typ := Reserved; typ <= AUTH; typ++ {
		if got, ok := ParseType(typ.String()); typ != Reserved && (!ok || got != typ) {
			t.Errorf("ParseType(%q) = %v, %v", typ.String(), got, ok)
		}
		if typ.ExistsIn(V311) != (typ != Reserved && typ != AUTH) || typ.ExistsIn(V5) != (typ != Reserved) {
			t.Errorf("%s: ExistsIn wrong", typ)
		}
	}
	if _, ok := ParseType("RESERVED"); ok {
		t.Errorf("ParseType accepts RESERVED")
	}
	if Type(16).String() != "TYPE(16)" || Version(9).String() != "level 9" || V31.String() != "3.1" || V311.String() != "3.1.1" || V5.String() != "5.0" {
		t.Errorf("names")
	}
	if Version(2).Valid() || !V31.Valid() {
		t.Errorf("Valid")
	}
}
