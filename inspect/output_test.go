package inspect

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect/payload"
	"github.com/mqscope/mqscope/stream"
)

func TestJSONLines(t *testing.T) {
	s := newSession(t, Options{})
	s.c2s(&decode.Connect{ClientID: "dev1", KeepAlive: 60, HasUsername: true, Username: "bob", HasPassword: true, Password: []byte("hunter2"),
		Properties: props(ip(decode.PropTopicAliasMaximum, 4), decode.UserProp("a", "1"), decode.UserProp("a", "2"))})
	s.s2c(&decode.Connack{Properties: props(ip(decode.PropMaximumPacketSize, 100), ip(decode.PropTopicAliasMaximum, 3))})
	s.c2s(publish("sensors/t", 1, 5, `{"t":21.5}`, ip(decode.PropTopicAlias, 1), decode.BinProp(decode.PropCorrelationData, []byte{0, 1})))
	s.c2s(publish("", 0, 0, "\xff\xfe", ip(decode.PropTopicAlias, 1)))
	s.c2s(&decode.Subscribe{PacketID: 2, Subscriptions: []decode.Subscription{{Filter: "a/+", QoS: 1, NoLocal: true, RetainHandling: 2}}})
	s.s2c(&decode.Suback{PacketID: 2, ReasonCodes: []decode.ReasonCode{decode.NotAuthorized}})
	s.c2s(publish("big", 0, 0, strings.Repeat("x", 200)))
	cr := s.c.Close(s.now, closeEnd("server", ""))
	var buf bytes.Buffer
	w := NewJSONWriter(&buf, JSONOptions{Payload: payload.Full})
	for _, r := range append(s.recs, cr) {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var objs []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		objs = append(objs, m)
	}
	if strings.Contains(buf.String(), "hunter2") {
		t.Error("password in JSON")
	}
	connect := objs[0]
	if connect["kind"] != "packet" || connect["type"] != "CONNECT" || connect["dir"] != "c2s" || connect["version"] != 5.0 ||
		connect["password"] != "<redacted>" || connect["client"] != "10.0.0.2:50000" || connect["time"] != "2026-11-26T12:00:00.001000000Z" {
		t.Errorf("CONNECT %v", connect)
	}
	up := connect["properties"].(map[string]any)["user_property"].([]any)
	if len(up) != 2 || up[1].([]any)[1] != "2" || connect["properties"].(map[string]any)["topic_alias_maximum"] != 4.0 {
		t.Errorf("properties %v", connect["properties"])
	}
	sess := objs[2]
	eff := sess["effective"].(map[string]any)
	if sess["kind"] != "session" || eff["c2s"].(map[string]any)["maximum_packet_size"] != 100.0 || eff["s2c"].(map[string]any)["topic_alias_maximum"] != 4.0 {
		t.Errorf("session %v", sess)
	}
	pub := objs[3]
	if pub["topic"] != "sensors/t" || pub["qos"] != 1.0 || pub["packet_id"] != 5.0 || pub["topic_alias"] != 1.0 || pub["payload_format"] != "json" || pub["payload_size"] != 10.0 {
		t.Errorf("PUBLISH %v", pub)
	}
	if p := pub["properties"].(map[string]any); p["correlation_data"] != "0001" || p["correlation_data_encoding"] != "hex" {
		t.Errorf("correlation data %v", p)
	}
	alias := objs[4]
	if alias["topic"] != "sensors/t" || alias["payload_b64"] != "//4=" {
		t.Errorf("alias-only PUBLISH %v", alias)
	}
	sub := objs[5]["subscriptions"].([]any)[0].(map[string]any)
	if sub["filter"] != "a/+" || sub["no_local"] != true || sub["retain_handling"] != 2.0 {
		t.Errorf("subscription %v", sub)
	}
	suback := objs[6]
	if rc := suback["reason_codes"].([]any)[0].(map[string]any); rc["code"] != 135.0 || rc["reason"] != "Not authorized" {
		t.Errorf("SUBACK %v", suback)
	}
	n := suback["notes"].([]any)[0].(map[string]any)
	if n["level"] != "error" || n["rule"] != RuleSubackError || n["cause"].(map[string]any)["index"] != 5.0 {
		t.Errorf("note %v", n)
	}
	big := objs[7]
	if big["notes"].([]any)[0].(map[string]any)["rule"] != "MQTT-3.2.2-15" {
		t.Errorf("big %v", big)
	}
	closeRec := objs[len(objs)-1]
	if closeRec["kind"] != "close" || closeRec["by"] != "server" || closeRec["packets"].(map[string]any)["PUBLISH"] != 3.0 ||
		closeRec["findings"].(map[string]any)["MQTT-3.2.2-15"] != 1.0 || closeRec["aliases_c2s"].(map[string]any)["1"] != "sensors/t" {
		t.Errorf("close %v", closeRec)
	}
}

func TestFilter(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, props(ip(decode.PropTopicAliasMaximum, 2)))
	pub := s.c2s(publish("sensors/t", 1, 1, "21.5", decode.UserProp("unit", "C")))
	bad := s.c2s(publish("x", 0, 0, "y", ip(decode.PropTopicAlias, 0)))
	ack := s.s2c(ack(decode.PUBACK, 1, decode.NotAuthorized))
	cases := []struct {
		expr string
		want []*PacketRecord
	}{
		{`type == "PUBLISH" && topic startsWith "sensors/" && qos > 0`, []*PacketRecord{pub}},
		{`notes.rule == "MQTT-3.3.2-8"`, []*PacketRecord{bad}},
		{`notes.rule != "MQTT-3.3.2-8" && type == "PUBLISH"`, []*PacketRecord{pub}},
		{`notes.rule startsWith "MQSCOPE-"`, []*PacketRecord{ack}},
		{`"MQSCOPE-ACK-ERROR" in notes.rule`, []*PacketRecord{ack}},
		{`conn == 1 && dir == "s2c" && reason_code >= 0x80`, []*PacketRecord{ack}},
		{`user_properties.unit == "C" && payload == "21.5"`, []*PacketRecord{pub}},
		{`level == "error"`, []*PacketRecord{bad, ack}},
		{`reason_code == 0`, nil},
		{`reason_code == nil`, []*PacketRecord{pub, bad}},
		{``, []*PacketRecord{pub, bad, ack}},
	}
	for _, c := range cases {
		f, err := CompileFilter(c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		var got []*PacketRecord
		for _, r := range []*PacketRecord{pub, bad, ack} {
			if f.Match(r) {
				got = append(got, r)
			}
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: matched %d, want %d", c.expr, len(got), len(c.want))
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: match %d is #%d, want #%d", c.expr, i, got[i].Index, c.want[i].Index)
			}
		}
	}
}

func TestFilterNotCondition(t *testing.T) {
	if _, err := CompileFilter(`topic`); err == nil || !strings.Contains(err.Error(), "a filter is a condition") {
		t.Errorf("error %v", err)
	}
	if _, err := CompileFilter(`tpye == 1`); err == nil || !strings.Contains(err.Error(), "fields: kind") {
		t.Errorf("error %v", err)
	}
}

func TestTextOutput(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, props(ip(decode.PropMaximumPacketSize, 50)))
	s.c2s(publish("a/b", 1, 1, strings.Repeat("x", 60)))
	var buf bytes.Buffer
	w := NewTextWriter(&buf, TextOptions{Payload: payload.Preview})
	for _, r := range s.recs {
		w.Write(r)
	}
	w.Close()
	out := buf.String()
	for _, want := range []string{"→ PUBLISH     id=1 \"a/b\" q1", "MQTT-3.2.2-15", "session  keep alive 60 s (client)"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour without Color")
	}
}

func TestPayloadNotes(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, nil)
	r := s.c2s(publish("a", 0, 0, "not json", decode.StrProp(decode.PropContentType, "application/json")))
	clean(t, r)
	if len(r.PayloadNotes(payload.None)) != 0 {
		t.Error("payload notes in mode none")
	}
	var txt, js bytes.Buffer
	render(NewTextWriter(&txt, TextOptions{Payload: payload.Preview}), []Record{r})
	render(NewJSONWriter(&js, JSONOptions{Payload: payload.Preview}), []Record{r})
	if !strings.Contains(txt.String(), RulePayloadContent) || !strings.Contains(js.String(), RulePayloadContent) {
		t.Errorf("no payload note:\n%s\n%s", txt.String(), js.String())
	}
}

func TestNoteMarshalJSON(t *testing.T) {
	n := Note{Level: decode.LevelWarning, Rule: "MQTT-3.3.2-9", Text: "t", Cause: &CauseRef{Index: 3, Type: decode.PUBLISH, Summary: "s"}}
	b, err := json.Marshal([]Note{n})
	if err != nil || string(b) != `[{"level":"warning","rule":"MQTT-3.3.2-9","text":"t","cause":{"index":3,"type":"PUBLISH","summary":"s"}}]` {
		t.Errorf("%s %v", b, err)
	}
}

func TestFilterShortAck(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, nil)
	s.c2s(publish("a", 1, 1, "x"))
	a := s.s2c(ack(decode.PUBACK, 1, 0))
	f, _ := CompileFilter(`type == "PUBACK" && reason_code == 0 && reason == "Success"`)
	if !f.Match(a) {
		t.Error("short PUBACK is not reason 0")
	}
}

func TestTextCutsLongProperties(t *testing.T) {
	long := "a" + strings.Repeat("é", 40) // 81 bytes: byte 64 is inside a character
	s := newSession(t, Options{})
	s.connect(nil, nil)
	r := s.s2c(&decode.Disconnect{HasReason: true, ReasonCode: 0x80, Properties: decode.Properties{
		decode.StrProp(decode.PropReasonString, long),
		{ID: decode.PropUserProperty, Str: "k", Value: "short"},
	}})
	var preview, full bytes.Buffer
	render(NewTextWriter(&preview, TextOptions{Payload: payload.Preview}), []Record{r})
	render(NewTextWriter(&full, TextOptions{Payload: payload.Full}), []Record{r})
	want := `reason_string="a` + strings.Repeat("é", 31) + `"…(81 bytes)`
	if !strings.Contains(preview.String(), want) || !strings.Contains(preview.String(), `user_property="k=short"`) {
		t.Errorf("preview:\n%s\nwant %s", preview.String(), want)
	}
	if !strings.Contains(full.String(), `reason_string="`+long+`"`) {
		t.Errorf("full:\n%s", full.String())
	}
}

func TestSummaryHeadWithoutConnect(t *testing.T) {
	empty := NewConn(1, "10.0.0.2:1", "10.0.0.1:1883", Options{})
	empty.Feed(stream.C2S, t0, []byte{0x10, 0x20}) // the start of a CONNECT, then the capture ends
	mid := NewConn(2, "10.0.0.3:2", "10.0.0.1:1883", Options{})
	mid.MidStream()
	recs := mid.Feed(stream.C2S, t0, enc(t, publish("a/b", 0, 0, "x")))
	recs = append(recs, empty.Close(t0, closeEnd("unknown", "the capture ended with the connection open")), mid.Close(t0, closeEnd("unknown", "")))
	var buf bytes.Buffer
	render(NewSummaryWriter(&buf, TextOptions{}), recs)
	out := buf.String()
	for _, want := range []string{
		"Connection 1  10.0.0.2:1 → 10.0.0.1:1883  no whole MQTT packet\n",
		"  Packets: 0\n",
		"MQSCOPE-UNFINISHED-PACKET",
		// A PUBLISH that reads as either version does not tell it.
		"Connection 2  10.0.0.3:2 → 10.0.0.1:1883  client_id unknown (no CONNECT seen)  MQTT version unknown (no CONNECT seen; every packet reads as 3.1.1 and as 5: decoded as 5)\n",
		"  Packets: 1 (PUBLISH 1)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

// TestSummary311 prints no MQTT 5 limits for an MQTT 3.1.1 connection, and "never" for the
// session expiry of a persistent session; MQTT 5 keeps its limits table.
func TestSummary311(t *testing.T) {
	var recs []Record
	for i, v := range []decode.Version{decode.V311, decode.V5} {
		c := NewConn(i+1, "10.0.0.2:1", "10.0.0.1:1883", Options{})
		cn := &decode.Connect{ClientID: "dev", KeepAlive: 60}
		cn.Version = v
		ca := &decode.Connack{SessionPresent: true}
		ca.Version = v
		recs = append(recs, c.Feed(stream.C2S, t0, enc(t, cn))...)
		recs = append(recs, c.Feed(stream.S2C, t0, enc(t, ca))...)
		recs = append(recs, c.Close(t0, closeEnd("client-eof", "TCP FIN")))
	}
	var sum, txt bytes.Buffer
	render(NewSummaryWriter(&sum, TextOptions{}), recs)
	render(NewTextWriter(&txt, TextOptions{}), recs)
	v311, v5, ok := strings.Cut(sum.String(), "\nConnection 2")
	if !ok {
		t.Fatalf("summary:\n%s", sum.String())
	}
	for _, want := range []string{
		"  CONNACK 0x00 Connection Accepted; keep alive 60 s (from the client); session expiry never (0xFFFFFFFF)\n",
		"  MQTT 3.1.1: no negotiated limits (no Receive Maximum, Maximum Packet Size or Topic Aliases)\n",
	} {
		if !strings.Contains(v311, want) {
			t.Errorf("MQTT 3.1.1: missing %q in\n%s", want, v311)
		}
	}
	for _, not := range []string{"Limit", "Receive Maximum  ", "Subscription Identifiers", "Shared Subscription", "Topic aliases"} {
		if strings.Contains(v311, not) {
			t.Errorf("MQTT 3.1.1: %q in\n%s", not, v311)
		}
	}
	for _, want := range []string{"session expiry 0 s\n", "  Limit ", "  Receive Maximum ", "  Shared Subscription ", "  Topic aliases client→server: none\n"} {
		if !strings.Contains(v5, want) {
			t.Errorf("MQTT 5: missing %q in\n%s", want, v5)
		}
	}
	for _, want := range []string{"[1]   session  keep alive 60 s (client)\n", "[2]   session  keep alive 60 s (client), session expiry 0 s; c→s receive max 65535"} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text: missing %q in\n%s", want, txt.String())
		}
	}
}

// TestCloseLine: the text and the summary say "closed by" only when someone closed; a
// connection still open when the capture ended says that.
func TestCloseLine(t *testing.T) {
	for _, tc := range []struct{ by, reason, want string }{
		{"unknown", "the capture ended with the connection open", "the capture ended with the connection open"},
		{"client-eof", "TCP FIN", "closed by client-eof: TCP FIN"},
		{"server", "", "closed by server"},
	} {
		r := &CloseRecord{Time: t0, Conn: 1, Client: "c", Server: "s", End: closeEnd(tc.by, tc.reason)}
		var text, sum bytes.Buffer
		tw := NewTextWriter(&text, TextOptions{})
		sw := NewSummaryWriter(&sum, TextOptions{})
		for _, w := range []Writer{tw, sw} {
			if err := w.Write(r); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		for name, out := range map[string]string{"text": text.String(), "summary": sum.String()} {
			if !strings.Contains(out, " "+tc.want) || (tc.by == "unknown" && strings.Contains(out, "closed by")) {
				t.Errorf("%s, by %q: %q", name, tc.by, out)
			}
		}
	}
}
