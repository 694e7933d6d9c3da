package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

// TestRunProxyFaultOversize: mosquitto limited to 200-byte packets grants that in its CONNACK;
// the faults grow the device's PUBLISH packets over it, and mosquitto answers DISCONNECT 0x95
// Packet too large. The timeline reads in that order: the fault's record, the grown PUBLISH,
// then mosquitto's DISCONNECT whose cause names the PUBLISH and the fault; the recording has
// the fault as a comment on the grown PUBLISH, as tshark reads it.
//
// mosquitto deviates: it compares the Remaining Length + 1 with its limit, leaving out the
// Remaining Length's own bytes, so it takes 201 and 202-byte packets (checked here with a
// PINGREQ answered after one) and refuses from 203 bytes on.
func TestRunProxyFaultOversize(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "faults.pcapng")
	fs := startFaultSessionWith(t, []string{"max_packet_size 200"}, "big", func(o *proxyOptions) { o.record = rec },
		"oversize dir=c2s size=max_packet_size+2 count=1 name=edge", "oversize dir=c2s size=max_packet_size+3 name=big")
	c, frames, out, stop, v5 := fs.c, fs.frames, fs.out, fs.stop, fs.v5
	ack := fs.connack
	if p, ok := decode.Decode(ack, decode.V5).(*decode.Connack); !ok || p.ReasonCode != 0 {
		t.Fatalf("CONNACK % x", ack)
	} else if n, _ := p.Properties.Int(decode.PropMaximumPacketSize); n != 200 {
		t.Fatalf("mosquitto granted Maximum Packet Size %d, want 200", n)
	}
	b, _ := decode.Encode(nil, &decode.Publish{Base: v5, Topic: "a/b", Payload: []byte("small")})
	c.Write(b)
	c.Write([]byte{0xC0, 0x00}) // PINGREQ
	if resp := frames.next(t); !bytes.Equal(resp, []byte{0xD0, 0x00}) {
		t.Fatalf("after a 202-byte PUBLISH, PINGREQ got % x; mosquitto takes it (see above)", resp)
	}
	c.Write(b)
	disc := frames.next(t)
	d, ok := decode.Decode(disc, decode.V5).(*decode.Disconnect)
	if !ok || d.ReasonCode != 0x95 {
		t.Fatalf("device got % x, want DISCONNECT 0x95", disc)
	}
	if rest, err := io.ReadAll(c); len(rest) != 0 {
		t.Errorf("after DISCONNECT: % x %v", rest, err)
	}
	waitOut(t, out, `"kind":"close"`)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	recs := jsonRecords(t, out.String())
	// The last fault, then the grown PUBLISH, then mosquitto's DISCONNECT, in that order.
	var i int
	for i = len(recs) - 1; i >= 0 && recs[i]["kind"] != "fault"; i-- {
	}
	if i < 0 || i+2 >= len(recs) {
		t.Fatalf("no fault record followed by two records")
	}
	f, pub, dis := recs[i], recs[i+1], recs[i+2]
	after, _ := hex.DecodeString(fmt.Sprint(f["after"]))
	grown, _ := decode.Decode(after, decode.V5).(*decode.Publish)
	if f["rule"] != "big" || f["dir"] != "c2s" || f["used"] != "max_packet_size+3 = 203 with max_packet_size=200" ||
		f["did"] != fmt.Sprintf("PUBLISH grown from %d to 203 bytes", len(b)) || f["index"] != pub["index"] ||
		f["before"] != hex.EncodeToString(b) || len(after) != 203 || grown == nil || grown.Topic != "a/b" || !bytes.HasPrefix(grown.Payload, []byte("small")) {
		t.Errorf("fault record %v", f)
	}
	if o, _ := f["original"].(map[string]any); o["type"] != "PUBLISH" || o["size"] != float64(len(b)) {
		t.Errorf("fault record's original %v", f["original"])
	}
	if pub["type"] != "PUBLISH" || pub["size"] != float64(203) || pub["fault"] != "big" {
		t.Errorf("after the fault %v, want the 203-byte PUBLISH the broker got", pub)
	}
	if dis["type"] != "DISCONNECT" || dis["dir"] != "s2c" || dis["reason_code"] != float64(0x95) || dis["by_proxy"] != nil {
		t.Fatalf("after the PUBLISH %v, want mosquitto's DISCONNECT 0x95", dis)
	}
	// The inspection links the broker's reaction to the grown PUBLISH, and names the fault.
	if cause := causeIndex(dis); cause == nil || cause != pub["index"] {
		t.Errorf("DISCONNECT caused by %v, want the PUBLISH #%v", cause, pub["index"])
	}
	want := fmt.Sprintf("PUBLISH #%v, 203 bytes, over the 200-byte Maximum Packet Size granted in CONNACK; altered by fault `big`: PUBLISH grown from %d to 203 bytes", pub["index"], len(b))
	if s := causeSummary(dis); s != want {
		t.Errorf("cause %q\nwant  %q", s, want)
	}

	// tshark reads the fault as the grown PUBLISH's comment.
	tshark := peer.Require(t, "tshark")
	server := fmt.Sprint(recs[0]["server"]) // mosquitto's address, as the recording has it
	port := server[strings.LastIndex(server, ":")+1:]
	got, err := exec.Command(tshark, "-r", rec, "-d", "tcp.port=="+port+",mqtt", "-Y", "frame.comment",
		"-T", "fields", "-e", "frame.comment", "-e", "mqtt.msgtype", "-e", "mqtt.len").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	if len(lines) != 2 ||
		lines[1] != fmt.Sprintf("mqscope fault big: PUBLISH grown from %d to 203 bytes; max_packet_size+3 = 203 with max_packet_size=200\t3\t200", len(b)) ||
		!strings.HasPrefix(lines[0], "mqscope fault edge: PUBLISH grown") {
		t.Errorf("tshark's commented frames:\n%s", got)
	}
}

// jsonRecords parses JSON lines.
func jsonRecords(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// causeSummary is the summary of the cause of record r's first note ("" when none).
func causeSummary(r map[string]any) string {
	if notes, _ := r["notes"].([]any); len(notes) > 0 {
		if n, _ := notes[0].(map[string]any); n != nil {
			if c, _ := n["cause"].(map[string]any); c != nil {
				s, _ := c["summary"].(string)
				return s
			}
		}
	}
	return ""
}

// TestRunProxyFaultOversizeText: the same timeline in the text output, line by line.
func TestRunProxyFaultOversizeText(t *testing.T) {
	fs := startFaultSessionWith(t, []string{"max_packet_size 200"}, "big", func(o *proxyOptions) { o.format = "text" },
		"oversize dir=c2s size=max_packet_size+3 name=big")
	b, _ := decode.Encode(nil, &decode.Publish{Base: fs.v5, Topic: "a/b", Payload: []byte("small")})
	fs.c.Write(b)
	if d, ok := decode.Decode(fs.frames.next(t), decode.V5).(*decode.Disconnect); !ok || d.ReasonCode != 0x95 {
		t.Fatalf("device got %v, want DISCONNECT 0x95", d)
	}
	io.ReadAll(fs.c)
	waitOut(t, fs.out, "closed by")
	if err := fs.stop(); err != nil {
		t.Fatal(err)
	}
	// Times and ports vary: compare what follows them.
	var lines []string
	for _, l := range strings.Split(fs.out.String(), "\n") {
		if _, rest, ok := strings.Cut(l, "] "); ok && strings.Contains(l, "[1]") {
			l = rest
		}
		lines = append(lines, l)
	}
	text := strings.Join(lines, "\n")
	want := fmt.Sprintf(`  fault → big: PUBLISH grown from %d to 203 bytes; max_packet_size+3 = 203 with max_packet_size=200
        was: PUBLISH     "a/b" q0 %dB
#3    → PUBLISH     "a/b" q0 203B  smallxxx`, len(b), len(b))
	if !strings.Contains(text, want) {
		t.Errorf("output lacks\n%s\n---\n%s", want, text)
	}
	cause := fmt.Sprintf("↳ caused by PUBLISH #3, 203 bytes, over the 200-byte Maximum Packet Size granted in CONNACK; altered by fault `big`: PUBLISH grown from %d to 203 bytes", len(b))
	if i, j := strings.Index(text, want), strings.Index(text, cause); i < 0 || j < i || !strings.Contains(text[i:j], "#4    ← DISCONNECT  0x95") {
		t.Errorf("the DISCONNECT 0x95 and its cause %q do not follow the PUBLISH", cause)
	}
}

// frameReader reads whole MQTT frames from c, keeping what follows a frame for the next.
type frameReader struct {
	c  net.Conn
	fr *decode.Framer
}

func newFrameReader(c net.Conn) *frameReader {
	return &frameReader{c: c, fr: decode.NewFramer(1 << 20)}
}

// next returns the next whole frame.
func (r *frameReader) next(t *testing.T) []byte {
	t.Helper()
	buf := make([]byte, 4096)
	for {
		if f, err := r.fr.Next(); err != nil {
			t.Fatal(err)
		} else if f != nil {
			return bytes.Clone(f)
		}
		n, err := r.c.Read(buf)
		if n == 0 && err != nil {
			t.Fatalf("reading a frame: %v", err)
		}
		r.fr.Write(buf[:n])
	}
}

// lastRecords returns the last PUBLISH and DISCONNECT records of JSON lines out.
func lastRecords(t *testing.T, out string) (pub, dis map[string]any) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		switch r["type"] {
		case "PUBLISH":
			pub = r
		case "DISCONNECT":
			dis = r
		}
	}
	return pub, dis
}

// causeIndex is the index of the packet the first note of record r names as its cause (nil
// when none).
func causeIndex(r map[string]any) any {
	if notes, _ := r["notes"].([]any); len(notes) > 0 {
		if n, _ := notes[0].(map[string]any); n != nil {
			if c, _ := n["cause"].(map[string]any); c != nil {
				return c["index"]
			}
		}
	}
	return nil
}

// TestRunProxyFaultDisconnect: after the broker's SUBACK the device gets DISCONNECT 0x89 with
// the reason string, then EOF; mosquitto's side is closed too. The timeline has the SUBACK,
// the fault, the DISCONNECT as the proxy's own (not the broker's), and a close record saying
// the proxy ended the connection by the fault.
func TestRunProxyFaultDisconnect(t *testing.T) {
	fs := startFaultSession(t, nil, "busy", `disconnect dir=s2c reason=0x89 reason_string="busy, later" after=SUBACK name=busy`)
	c, frames, out, stop, v5 := fs.c, fs.frames, fs.out, fs.stop, fs.v5
	b, _ := decode.Encode(nil, &decode.Subscribe{Base: v5, PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "a/b", Options: 1, QoS: 1}}})
	c.Write(b)
	if f := frames.next(t); decode.Type(f[0]>>4) != decode.SUBACK {
		t.Fatalf("got % x, want SUBACK", f)
	}
	got := frames.next(t)
	d, ok := decode.Decode(got, decode.V5).(*decode.Disconnect)
	if rs, _ := d.Properties.String(decode.PropReasonString); !ok || d.ReasonCode != 0x89 || rs != "busy, later" {
		t.Fatalf("device got % x, want DISCONNECT 0x89 \"busy, later\"", got)
	}
	if rest, err := io.ReadAll(c); len(rest) != 0 || err != nil {
		t.Errorf("after DISCONNECT: % x %v; want EOF", rest, err)
	}
	waitOut(t, out, `"kind":"close"`)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	recs := jsonRecords(t, out.String())
	if len(recs) < 4 {
		t.Fatalf("%d records", len(recs))
	}
	// The broker's SUBACK as it came, the fault, the proxy's own DISCONNECT, the close.
	suback, f, dis, closed := recs[len(recs)-4], recs[len(recs)-3], recs[len(recs)-2], recs[len(recs)-1]
	if suback["type"] != "SUBACK" || suback["fault"] != nil || suback["by_proxy"] != nil {
		t.Errorf("before the fault %v, want the broker's SUBACK", suback)
	}
	if f["kind"] != "fault" || f["rule"] != "busy" || f["by_proxy"] != true || f["closed"] != true || f["index"] != dis["index"] ||
		f["before"] != f["after"].(string)[:len(f["before"].(string))] {
		t.Errorf("fault record %v", f)
	}
	if dis["type"] != "DISCONNECT" || dis["by_proxy"] != true || dis["fault"] != "busy" || causeSummary(dis) != "" {
		t.Errorf("after the fault %v, want the proxy's DISCONNECT, with no cause among the broker's packets", dis)
	}
	if closed["by"] != "proxy" || !strings.Contains(fmt.Sprint(closed["reason"]), "fault busy: DISCONNECT 0x89") {
		t.Errorf("close record %v", closed)
	}
}

// TestRunProxyFaultLimits: mosquitto configured with a limit answers the fault that breaks it
// with the reason code the standard gives, and the inspection links that DISCONNECT to the
// PUBLISH the fault altered.
//
// An alias over the Topic Alias Maximum is "Topic Alias invalid" (0x94), also where mosquitto
// allowed none (max_topic_alias 0: a CONNACK without Topic Alias Maximum, so the fault's
// topic_alias_maximum+1 is alias 1); an alias-only PUBLISH with an alias the receiver does not
// know is a Protocol Error (0x82). mosquitto 2.0.11 deviates on alias 0, which the standard
// forbids [MQTT-3.3.2-8] and mqscope's decoder reports as Topic Alias invalid: it answers 0x81
// Malformed Packet.
func TestRunProxyFaultLimits(t *testing.T) {
	for _, tc := range []struct {
		name, conf, rule string
		want             decode.ReasonCode
	}{
		{"qos over maximum", "max_qos 1", "qos dir=c2s", 0x9B},
		{"retain unavailable", "retain_available false", "retain dir=c2s", 0x9A},
		{"alias over maximum", "max_topic_alias 4", "alias dir=c2s", 0x94},
		{"alias none allowed", "max_topic_alias 0", "alias dir=c2s", 0x94},
		{"alias 0", "max_topic_alias 10", "alias dir=c2s to=0", 0x81},
		{"alias unmapped", "max_topic_alias 10", "alias_unmapped dir=c2s", 0x82},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := startFaultSession(t, []string{tc.conf}, "lim", tc.rule)
			c, frames, out, stop, v5 := fs.c, fs.frames, fs.out, fs.stop, fs.v5
			b, _ := decode.Encode(nil, &decode.Publish{Base: v5, Topic: "a/b", QoS: 1, PacketID: 1, Payload: []byte("x")})
			c.Write(b)
			got := frames.next(t)
			d, ok := decode.Decode(got, decode.V5).(*decode.Disconnect)
			if !ok || d.ReasonCode != tc.want {
				t.Fatalf("device got % x, want DISCONNECT 0x%02X", got, byte(tc.want))
			}
			io.ReadAll(c) // the broker's close
			c.Close()
			waitOut(t, out, `"kind":"close"`)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), `"kind":"fault"`) {
				t.Errorf("no fault record")
			}
			pub, dis := lastRecords(t, out.String())
			if pub == nil || dis == nil {
				t.Fatalf("PUBLISH %v, DISCONNECT %v", pub, dis)
			}
			if cause := causeIndex(dis); cause == nil || cause != pub["index"] {
				t.Errorf("DISCONNECT %v not linked to PUBLISH #%v", dis["notes"], pub["index"])
			}
		})
	}
}

// faultSession is a device connected through mqscope proxy with fault rules to mosquitto.
type faultSession struct {
	c         net.Conn
	frames    *frameReader
	out, errb *peer.Buffer
	stop      func() error
	v5        decode.Base
	connack   []byte
	addr      string // the proxy's
}

// startFaultSession starts mosquitto with conf and the proxy with rules (JSON lines), connects
// as an MQTT 5 client with clientID and reads the CONNACK; the output is logged if the test fails.
func startFaultSession(t *testing.T, conf []string, clientID string, rules ...string) *faultSession {
	t.Helper()
	return startFaultSessionWith(t, conf, clientID, nil, rules...)
}

// startFaultSessionWith is startFaultSession with more options set by set (nil: none).
func startFaultSessionWith(t *testing.T, conf []string, clientID string, set func(*proxyOptions), rules ...string) *faultSession {
	t.Helper()
	m := peer.StartMosquitto(t, conf...)
	fs := startFaultProxyWith(t, m.Addr, "", set, rules...)
	fs.c, fs.frames, fs.connack = fs.dial(t, clientID)
	return fs
}

// startFaultProxy starts the proxy to upstream (with --profile when not "") with rules, its
// records in JSON lines; the output is logged if the test fails.
func startFaultProxy(t *testing.T, upstream, profile string, rules ...string) *faultSession {
	t.Helper()
	return startFaultProxyWith(t, upstream, profile, nil, rules...)
}

func startFaultProxyWith(t *testing.T, upstream, profile string, set func(*proxyOptions), rules ...string) *faultSession {
	t.Helper()
	fs := &faultSession{out: new(peer.Buffer), errb: new(peer.Buffer), v5: decode.Base{Version: decode.V5}}
	o := &proxyOptions{io: &streams{In: strings.NewReader(""), Out: fs.out, Err: fs.errb}, listen: "127.0.0.1:0", upstream: upstream,
		profile: profile, format: "jsonl", payload: "preview", maxFrame: 1 << 20, bufferSize: 4096, shutdownTimeout: 5 * time.Second, faults: rules}
	if set != nil {
		set(o)
	}
	fs.addr, fs.stop = startProxyCmd(t, o)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", fs.out.String(), fs.errb.String())
		}
	})
	return fs
}

// dial connects to the proxy as an MQTT 5 client with clientID and reads the CONNACK.
func (fs *faultSession) dial(t *testing.T, clientID string) (net.Conn, *frameReader, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", fs.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	frames := newFrameReader(c)
	b, _ := decode.Encode(nil, &decode.Connect{Base: fs.v5, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: clientID})
	c.Write(b)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c, frames, frames.next(t)
}

// TestProxyNoFaultNoStages: without --fault or --api the proxy gets no stages, so it frames
// nothing and forwards bytes as they come; with one, both directions get the rules.
func TestProxyNoFaultNoStages(t *testing.T) {
	o := &proxyOptions{io: &streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard}, listen: "127.0.0.1:0", upstream: "127.0.0.1:1",
		format: "text", payload: "preview", maxFrame: 1 << 20, bufferSize: 4096}
	cfg, _, err := o.config()
	if err != nil || cfg.Stages != nil {
		t.Fatalf("no --fault: stages %v, error %v", cfg.Stages != nil, err)
	}
	o.faults = []string{"drop type=PUBACK"}
	if cfg, _, err = o.config(); err != nil || cfg.Stages == nil {
		t.Fatalf("--fault: stages %v, error %v", cfg.Stages != nil, err)
	}
	for _, d := range []stream.Dir{stream.C2S, stream.S2C} {
		if n := len(cfg.Stages(&stream.Conn{ID: 1}, d, proxy.StageEnv{})); n != 1 {
			t.Errorf("%s: %d stages", d, n)
		}
	}
	// With the control API, connections get the stage with no rule yet (rules come later) and
	// the intercept's.
	o.faults, o.api = nil, "127.0.0.1:0"
	if cfg, _, err = o.config(); err != nil || cfg.Stages == nil || len(cfg.Stages(&stream.Conn{ID: 2}, stream.C2S, proxy.StageEnv{})) != 2 {
		t.Fatalf("--api: stages %v, error %v", cfg.Stages != nil, err)
	}
}

// TestProxyFaultsFile: --faults FILE and --fault together, the file's rules first, numbered
// in that order; a bad file is a usage error naming the file, line and column.
func TestProxyFaultsFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "faults.yaml")
	os.WriteFile(file, []byte("faults:\n  - {action: drop, type: PUBACK, dir: s2c, count: 1}\n  - oversize size=300 name=big\n"), 0o600)
	o := &proxyOptions{io: &streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard}, listen: "127.0.0.1:0", upstream: "127.0.0.1:1",
		format: "text", payload: "preview", maxFrame: 1 << 20, bufferSize: 4096, faultsFile: file, faults: []string{"retain dir=c2s"}}
	if _, _, err := o.config(); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range o.set.Rules {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, "|"); got != "#1 drop|big|#3 retain" {
		t.Errorf("rules %s", got)
	}
	for _, tc := range []struct{ file, flag, want string }{
		{"faults:\n  - action: drop\n    dirr: s2c\n", "", file + ":3:5: dirr does not apply to drop"},
		{"faults:\n  - drop name=big\n", "retain name=big", "rules 1 and 2 are both named big"},
		{"fault: []\n", "", file + ":1:1: unknown key fault"},
	} {
		os.WriteFile(file, []byte(tc.file), 0o600)
		o.faults = nil
		if tc.flag != "" {
			o.faults = []string{tc.flag}
		}
		_, _, err := o.config()
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want a usage error with %q", tc.file, err, tc.want)
		}
	}
}
