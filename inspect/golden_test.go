package inspect

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect/payload"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenScenario is a crafted connection that exercises most of what inspection reports.
func goldenScenario(t testing.TB) []Record {
	s := newSession(t, Options{})
	s.c2s(&decode.Connect{ClientID: "sensor-7", KeepAlive: 60, CleanStart: true, HasUsername: true, Username: "dev",
		HasPassword: true, Password: []byte("s3cret"),
		Properties: props(ip(decode.PropSessionExpiry, 0), ip(decode.PropReceiveMaximum, 10), ip(decode.PropTopicAliasMaximum, 0)),
		Will:       &decode.WillMessage{Topic: "sensors/7/status", QoS: 1, Payload: []byte("offline")}})
	s.s2c(&decode.Connack{Properties: props(ip(decode.PropReceiveMaximum, 2), ip(decode.PropMaximumPacketSize, 200),
		ip(decode.PropTopicAliasMaximum, 2), ip(decode.PropMaximumQoS, 1), ip(decode.PropServerKeepAlive, 30))})
	s.c2s(&decode.Subscribe{PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "cmd/7/#", QoS: 1}}})
	s.s2c(&decode.Suback{PacketID: 1, ReasonCodes: []decode.ReasonCode{decode.GrantedQoS1}})
	s.c2s(publish("sensors/7/temp", 1, 2, `{"t":21.5,"unit":"C"}`, ip(decode.PropTopicAlias, 1), decode.StrProp(decode.PropContentType, "application/json")))
	s.s2c(ack(decode.PUBACK, 2, 0))
	s.c2s(publish("", 1, 3, `{"t":21.6,"unit":"C"}`, ip(decode.PropTopicAlias, 1)))
	s.c2s(publish("", 1, 4, `{"t":21.7,"unit":"C"}`, ip(decode.PropTopicAlias, 2)))
	s.c2s(publish("sensors/7/temp", 1, 5, "21.8"))
	s.s2c(ack(decode.PUBACK, 3, 0))
	s.s2c(ack(decode.PUBACK, 4, 0))
	s.s2c(ack(decode.PUBACK, 5, decode.NotAuthorized))
	s.c2s(publish("svc/req", 0, 0, "ping", decode.StrProp(decode.PropResponseTopic, "svc/resp/7"), decode.BinProp(decode.PropCorrelationData, []byte("r1"))))
	s.wait(15 * time.Millisecond)
	s.s2c(publish("svc/resp/7", 0, 0, "pong", decode.BinProp(decode.PropCorrelationData, []byte("r1"))))
	s.c2s(publish("sensors/7/blob", 0, 0, strings.Repeat("\x00\x01\x02\x03", 50)))
	s.s2c(&decode.Disconnect{ReasonCode: decode.PacketTooLarge, HasReason: true, HasProperties: true,
		Properties: props(decode.StrProp(decode.PropReasonString, "packet too large"))})
	return append(s.recs, s.c.Close(s.now, closeEnd("server", "")))
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./inspect -run Golden -update)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs at line %d:\n got: %q\nwant: %q\n(run go test ./inspect -run Golden -update if the change is intended)", name, i+1, g, w)
			}
		}
	}
}

func render(w Writer, recs []Record) {
	for _, r := range recs {
		w.Write(r)
	}
	w.Close()
}

func TestGolden(t *testing.T) {
	recs := goldenScenario(t)
	for _, c := range []struct {
		name string
		w    func(*bytes.Buffer) Writer
	}{
		{"session.txt", func(b *bytes.Buffer) Writer { return NewTextWriter(b, TextOptions{Payload: payload.Preview}) }},
		{"session-color.txt", func(b *bytes.Buffer) Writer {
			return NewTextWriter(b, TextOptions{Color: true, Payload: payload.Preview})
		}},
		{"session-full.txt", func(b *bytes.Buffer) Writer { return NewTextWriter(b, TextOptions{Payload: payload.Full}) }},
		{"session.jsonl", func(b *bytes.Buffer) Writer { return NewJSONWriter(b, JSONOptions{Payload: payload.Preview}) }},
		{"session-summary.txt", func(b *bytes.Buffer) Writer { return NewSummaryWriter(b, TextOptions{}) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			render(c.w(&buf), recs)
			checkGolden(t, c.name, buf.Bytes())
		})
	}
}

func TestShowSecrets(t *testing.T) {
	recs := goldenScenario(t)
	var txt, js bytes.Buffer
	render(NewTextWriter(&txt, TextOptions{ShowSecrets: true}), recs)
	render(NewJSONWriter(&js, JSONOptions{ShowSecrets: true}), recs)
	if !strings.Contains(txt.String(), `password="s3cret"`) || !strings.Contains(js.String(), `"password":"s3cret"`) {
		t.Error("--show-secrets does not show the password")
	}
	txt.Reset()
	js.Reset()
	render(NewTextWriter(&txt, TextOptions{}), recs)
	render(NewJSONWriter(&js, JSONOptions{}), recs)
	if strings.Contains(txt.String()+js.String(), "s3cret") {
		t.Error("password shown without --show-secrets")
	}
}

// TestGoldenCapture renders the real mosquitto limits capture as text and as a summary. Times
// and client ports are masked: gen.sh regenerates the capture with new ones.
func TestGoldenCapture(t *testing.T) {
	list := replay(t, "mqtt5-limits.pcapng", 18834, Options{})
	var recs []Record
	for _, rc := range list {
		recs = append(recs, rc.recs...)
	}
	var txt, sum bytes.Buffer
	render(NewTextWriter(&txt, TextOptions{Payload: payload.Preview}), recs)
	render(NewSummaryWriter(&sum, TextOptions{}), recs)
	mask := func(b []byte) []byte {
		b = regexp.MustCompile(`\d\d:\d\d:\d\d\.\d{6}`).ReplaceAll(b, []byte("hh:mm:ss.ssssss"))
		return regexp.MustCompile(`127\.0\.0\.1:\d+ →`).ReplaceAll(b, []byte("127.0.0.1:port →"))
	}
	checkGolden(t, "limits.txt", mask(txt.Bytes()))
	checkGolden(t, "limits-summary.txt", mask(sum.Bytes()))
}
