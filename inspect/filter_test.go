package inspect

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
)

// filterRecords is a small MQTT 5 session for the filter tests: each record is named by a letter.
func filterRecords(t *testing.T) (map[string]*PacketRecord, []string) {
	t.Helper()
	s := newSession(t, Options{})
	con, cack := s.connect(nil, nil) // 12:00:00.001, .002
	sub := s.c2s(&decode.Subscribe{PacketID: 2, Subscriptions: []decode.Subscription{{Filter: "a/#", QoS: 1}, {Filter: "b", QoS: 2}},
		Properties: props(ip(decode.PropSubscriptionID, 7))})
	suback := s.s2c(&decode.Suback{PacketID: 2, ReasonCodes: []decode.ReasonCode{1, decode.NotAuthorized}})
	pub := s.s2c(publish("a/b", 1, 1, "21.5", ip(decode.PropMessageExpiry, 200),
		decode.UserProp("k", "v1"), decode.UserProp("k", "v2"), ip(decode.PropSubscriptionID, 7)))
	bin := s.s2c(publish("a/c", 0, 0, "\xff\xfe"))
	puback := s.c2s(ack(decode.PUBACK, 1, 0))
	recs := map[string]*PacketRecord{"C": con, "K": cack, "S": sub, "s": suback, "P": pub, "B": bin, "A": puback}
	return recs, []string{"C", "K", "S", "s", "P", "B", "A"}
}

// TestFilterSemantics checks what each expression matches among C(ONNECT), (CONNAC)K,
// S(UBSCRIBE), s(UBACK), P(UBLISH QoS 1 with properties), B(inary PUBLISH QoS 0) and A (PUBACK),
// and that no expression fails at run time.
func TestFilterSemantics(t *testing.T) {
	recs, order := filterRecords(t)
	cases := []struct{ name, expr, want string }{
		// A missing value compared with <, <=, >, >= is false, so || commutes and not complements.
		{"absent > or", `properties.message_expiry_interval > 100 || type == "CONNECT"`, "CP"},
		{"or absent >", `type == "CONNECT" || properties.message_expiry_interval > 100`, "CP"},
		{"not absent >", `not (properties.message_expiry_interval > 100)`, "CKSsBA"},
		{"absent <=", `properties.message_expiry_interval <= 200`, "P"},
		{"not absent <=", `!(properties.message_expiry_interval <= 200)`, "CKSsBA"},
		{"absent on the right", `100 < properties.message_expiry_interval`, "P"},
		{"nil literal", `qos > nil`, ""},

		// Fields a packet does not have are nil, not zero.
		{"qos == 0", `qos == 0`, "B"},
		{"qos > 0", `qos > 0`, "P"},
		{"not qos > 0", `not (qos > 0)`, "CKSsBA"},
		{"qos >= 0", `qos >= 0`, "PB"},
		{"qos == nil", `qos == nil`, "CKSsA"},
		{"packet_id == 0", `packet_id == 0`, ""},
		{"packet_id == nil", `packet_id == nil`, "CKB"},
		{"packet_id < 2", `packet_id < 2`, "PA"},
		{"topic_alias == 0", `topic_alias == 0`, ""},
		{"payload_size == 0", `payload_size == 0`, ""},
		{"payload_size > 2", `payload_size > 2`, "P"},
		{"topic startsWith", `topic startsWith "a/"`, "PB"},
		{"topic matches", `topic matches "^a/[bc]$"`, "PB"},
		{"topic != ", `topic != "a/b"`, "CKSsBA"},
		{"topic >", `topic > "a/b"`, "B"},
		{"payload text only", `payload == nil`, "CKSsBA"},
		{"payload", `payload contains "."`, "P"},
		{"retain == false", `retain == false`, "PB"},
		{"retain alone", `retain`, ""},
		{"not retain", `not retain`, "CKSsPBA"},
		{"dup or retain", `dup || retain`, ""},
		{"not dup and", `!dup && type == "PUBLISH"`, "PB"},
		{"retain in ternary", `(retain ? 1 : 2) == 2`, "CKSsPBA"},
		{"reason_code nil", `reason_code == nil`, "CSsPB"},
		{"reason_code < 0x80", `reason_code < 0x80`, "KA"},
		{"reason", `reason == "Success"`, "KA"},
		{"reason_code 0", `reason_code == 0`, "KA"},

		// A repeated User Property: a comparison holds when it holds for any of its values.
		{"user property first", `user_properties.k == "v1"`, "P"},
		{"user property last", `user_properties.k == "v2"`, "P"},
		{"user property reversed", `"v1" == user_properties.k`, "P"},
		{"user property index", `user_properties["k"] startsWith "v"`, "P"},
		{"user property !=", `user_properties.k != "v1"`, "CKSsBA"},
		{"user property not ==", `not (user_properties.k == "v1")`, "CKSsBA"},
		{"user property in", `user_properties.k in ["v2", "v3"]`, "P"},
		{"user property list", `"v2" in user_properties.k && len(user_properties.k) == 2`, "P"},
		{"user property nil", `user_properties.k == nil`, "CKSsBA"},
		{"user property absent", `user_properties.x == "v1"`, ""},

		// Properties as the JSON lines show them.
		{"subscription_identifier", `7 in properties.subscription_identifier`, "SP"},
		{"subscription_identifier list", `properties.subscription_identifier == [7]`, "SP"},
		{"user_property pairs", `["k", "v2"] in properties.user_property`, "P"},
		{"user_property count", `len(properties.user_property ?? []) == 2`, "P"},

		// Times compare with RFC 3339 strings and their prefixes.
		{"time year", `time > "2026"`, "CKSsPBA"},
		{"time day", `time >= "2026-11-27"`, ""},
		{"time instant", `time < "2026-11-26T12:00:00.003Z"`, "CK"},
		{"time offset", `time <= "2026-11-26T13:00:00.001+01:00"`, "C"},
		{"time no zone", `time < "2026-11-26T12:00:00.002"`, "C"},
		{"time minute", `"2026-11-26T12:00" <= time`, "CKSsPBA"},
		{"time space", `time > "2026-11-26 12:00:00.006"`, "A"},
		{"time as time", `time > date("2026-11-26T12:00:00.006Z")`, "A"},

		// SUBACK and UNSUBACK reason codes: a list of codes; .code as in the JSON lines.
		{"reason_codes in", `0x87 in reason_codes`, "s"},
		{"reason_codes.code ==", `reason_codes.code == 1`, "s"},
		{"reason_codes.code >=", `reason_codes.code >= 0x80`, "s"},
		{"reason_codes.code !=", `reason_codes.code != 1`, "CKSPBA"},
		{"reason_codes any", `any(reason_codes, # >= 0x80)`, "s"},

		// notes are unchanged.
		{"notes", `notes.rule == "MQSCOPE-SUBACK-ERROR"`, "s"},
		{"notes not in", `"MQSCOPE-SUBACK-ERROR" not in notes.rule`, "CKSPBA"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := CompileFilter(c.expr)
			if err != nil {
				t.Fatalf("%s: %v", c.expr, err)
			}
			var got string
			for _, name := range order {
				if f.Match(recs[name]) {
					got += name
				}
			}
			if got != c.want {
				t.Errorf("%s: matched %q, want %q", c.expr, got, c.want)
			}
			if n, err := f.Errors(); n != 0 || err != nil {
				t.Errorf("%s: %d errors, first %v", c.expr, n, err)
			}
		})
	}
}

// TestFilterRunErrors: what still fails at run time is counted, with the first failure.
func TestFilterRunErrors(t *testing.T) {
	recs, order := filterRecords(t)
	for _, c := range []struct {
		expr  string
		n     int
		first string
	}{
		{`properties.message_expiry_interval > "x"`, 1, "connection 1 packet 5 (PUBLISH)"},
		{`payload_size + 1 > 1`, 5, "connection 1 packet 1 (CONNECT)"},
		{`properties.content_type`, 0, ""},
		{`properties.message_expiry_interval`, 1, "connection 1 packet 5 (PUBLISH): invalid operation: bool(int)"},
	} {
		f, err := CompileFilter(c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		for _, name := range order {
			f.Match(recs[name])
		}
		n, first := f.Errors()
		if n != c.n {
			t.Errorf("%s: %d errors, want %d (first %v)", c.expr, n, c.n, first)
		}
		if c.n == 0 {
			if first != nil {
				t.Errorf("%s: first error %v", c.expr, first)
			}
			continue
		}
		if first == nil || !errors.Is(first, ErrFilter) || !strings.Contains(first.Error(), c.first) {
			t.Errorf("%s: first error %v, want one with %q", c.expr, first, c.first)
		}
	}
	var none *Filter
	if n, err := none.Errors(); n != 0 || err != nil {
		t.Errorf("nil filter: %d %v", n, err)
	}
}

// TestFilterCompileErrors: nullable fields keep their types, a time string is checked, and the
// rewritten comparisons still report unknown names.
func TestFilterCompileErrors(t *testing.T) {
	for _, src := range []string{`type == `, `tpye == "PUBLISH"`, `qos > "x"`, `topic < 1`, `payload_size >= "1"`, `retain > 1`, `time > 5`, `time > "yesterday"`, `time < "2026-13"`,
		// Unknown names inside the comparisons the filter rewrites, and in calls.
		`tpye > 1`, `qos <= tpye`, `time > date(tpye)`, `user_properties.k > tpye`} {
		_, err := CompileFilter(src)
		if err == nil || !errors.Is(err, ErrFilter) {
			t.Errorf("%q: error %v", src, err)
			continue
		}
		if !strings.Contains(err.Error(), "^") || !strings.Contains(err.Error(), "(1:") {
			t.Errorf("%q: the error does not show where: %v", src, err)
		}
	}
}

func TestFilterTime(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	for _, c := range []struct {
		s    string
		loc  *time.Location
		want time.Time
	}{
		{"2026", time.UTC, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2026-11", cet, time.Date(2026, 11, 1, 0, 0, 0, 0, cet)},
		{"2026-11-26", cet, time.Date(2026, 11, 26, 0, 0, 0, 0, cet)},
		{"2026-11-26T14", time.UTC, time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)},
		{"2026-11-26T14:10", cet, time.Date(2026, 11, 26, 14, 10, 0, 0, cet)},
		{"2026-11-26T14:10:03Z", cet, time.Date(2026, 11, 26, 14, 10, 3, 0, time.UTC)},
		{"2026-11-26T14:10:03.5-02:00", time.UTC, time.Date(2026, 11, 26, 16, 10, 3, 5e8, time.UTC)},
		{"2026-11-26 14:10:03.000000001", time.UTC, time.Date(2026, 11, 26, 14, 10, 3, 1, time.UTC)},
		{"2026-11-26t14:10z", time.UTC, time.Date(2026, 11, 26, 14, 10, 0, 0, time.UTC)},
	} {
		got, err := parseFilterTime(c.s, c.loc)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("%s in %s: %v %v, want %v", c.s, c.loc, got, err, c.want)
		}
	}
	for _, s := range []string{"", "26", "2026-1", "2026-11-26T", "2026-11-26T14:10:03+1", "now"} {
		if _, err := parseFilterTime(s, time.UTC); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
}
