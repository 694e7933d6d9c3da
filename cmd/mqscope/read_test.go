package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqscope/mqscope/capture"
	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

const multiCapture = "../../testdata/captures/mqtt-multi.pcapng"

// jsonLines parses JSON lines output.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		recs = append(recs, m)
	}
	return recs
}

func count(recs []map[string]any, key, value string) int {
	n := 0
	for _, r := range recs {
		if r[key] == value {
			n++
		}
	}
	return n
}

func TestReadArgs(t *testing.T) {
	checkExits(t, []exitCase{
		{"no file", []string{"read"}, exitUsage, "at least one capture file"},
		{"bad format", []string{"read", "--format", "xml", multiCapture}, exitUsage, "--format"},
		{"bad filter", []string{"read", "--filter", "type ==", multiCapture}, exitUsage, "--filter"},
		{"bad port", []string{"read", "--port", "70000", multiCapture}, exitUsage, "port 70000"},
		{"bad payload", []string{"read", "--payload", "all", multiCapture}, exitUsage, "--payload"},
		{"unknown profile", []string{"read", "--profile", "no-such-profile", multiCapture}, exitUsage, "--profile"},
		{"missing file", []string{"read", "no/such.pcap"}, exitError, "no/such.pcap"},
		{"not a capture", []string{"read", "read.go"}, exitError, "read.go: not a pcap or pcapng file"},
		{"capture without interface", []string{"capture"}, exitUsage, "-i IFACE"},
		{"capture with arguments", []string{"capture", "-i", "lo", "x"}, exitUsage, "no arguments"},
	})
}

func TestReadJSONLines(t *testing.T) {
	code, out, errOut := runCmd(t, "", "read", "--format", "jsonl", multiCapture)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	recs := jsonLines(t, out)
	if n := count(recs, "kind", "close"); n != 8 {
		t.Errorf("%d connections closed, want 8", n)
	}
	if n := count(recs, "type", "PUBLISH"); n < 80 {
		t.Errorf("%d PUBLISH packets", n)
	}
}

func TestReadFilterAndWrite(t *testing.T) {
	out := filepath.Join(t.TempDir(), "publish.pcapng")
	code, stdout, errOut := runCmd(t, "", "read", "--format", "jsonl", "--filter", `type == "PUBLISH" && topic == "mqscope/multi/p2"`,
		"--write", out, multiCapture)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	recs := jsonLines(t, stdout)
	pubs := 0
	for _, r := range recs {
		if r["kind"] == "packet" {
			if r["type"] != "PUBLISH" || r["topic"] != "mqscope/multi/p2" {
				t.Errorf("filtered output has %v", r)
			}
			pubs++
		}
	}
	if pubs == 0 {
		t.Fatal("nothing passed the filter")
	}
	// The written file holds those PUBLISH packets (and whatever shared their segments).
	code, again, errOut := runCmd(t, "", "read", "--format", "jsonl", "--filter", `type == "PUBLISH" && topic == "mqscope/multi/p2"`, out)
	if code != 0 {
		t.Fatalf("reading the written file: exit %d: %s", code, errOut)
	}
	if n := count(jsonLines(t, again), "type", "PUBLISH"); n != pubs {
		t.Errorf("the written file has %d of the %d PUBLISH packets", n, pubs)
	}
	// And tshark reads it too.
	tshark := peer.Require(t, "tshark")
	o, err := exec.Command(tshark, "-r", out, "-d", "tcp.port==18833,mqtt", "-Y", `mqtt.topic == "mqscope/multi/p2"`, "-T", "fields", "-e", "mqtt.topic", "-E", "occurrence=a", "-E", "aggregator=\n").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	if n := strings.Count(string(o), "mqscope/multi/p2"); n != pubs {
		t.Errorf("tshark sees %d PUBLISH packets on the topic in the written file, want %d", n, pubs)
	}
}

func TestReadSummaryAndText(t *testing.T) {
	code, out, errOut := runCmd(t, "", "read", "--summary", multiCapture, "../../testdata/captures/mqtt-tls.pcapng")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "TLS, encrypted") || !strings.Contains(out, "server name: localhost") {
		t.Errorf("summary lacks the TLS connections:\n%s", out)
	}
	code, out, _ = runCmd(t, "", "read", "../../testdata/captures/mqtt-ws.pcapng")
	if code != 0 || !strings.Contains(out, "CONNECT") {
		t.Errorf("text output of the WebSocket capture: exit %d\n%s", code, out)
	}
}

// TestCaptureWithoutPrivilege runs mqscope capture without CAP_NET_RAW and expects the
// missing privilege named.
func TestCaptureWithoutPrivilege(t *testing.T) {
	capsh, err := exec.LookPath("capsh")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and capsh to drop CAP_NET_RAW")
	}
	bin := filepath.Join(t.TempDir(), "mqscope")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(capsh, "--drop=cap_net_raw", "--", "-c", bin+" capture -i lo").CombinedOutput()
	if err == nil {
		t.Fatalf("capture without CAP_NET_RAW succeeded: %s", out)
	}
	if !strings.Contains(string(out), "CAP_NET_RAW") || !strings.Contains(string(out), "root") {
		t.Errorf("error does not name the privilege: %s", out)
	}
}

// TestCaptureLive runs mqscope capture on lo while a client sends a CONNECT to a small
// server on a free port, and expects the JSON lines of both packets as they happen.
func TestCaptureLive(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 64)
		c.Read(b)
		c.Write([]byte{0x20, 0x02, 0x00, 0x00})
		c.Read(b)
	}()
	port := l.Addr().(*net.TCPAddr).Port
	var out, errb peer.Buffer
	o := &captureOptions{io: &streams{Out: &out, Err: &errb}, iface: "lo",
		// No --port: the connection is found by its CONNECT, and recorded whole all the same.
		out: outputOptions{format: "jsonl", payload: "preview", write: filepath.Join(t.TempDir(), "live.pcapng")}}
	cancel, done := startCapture(t, o)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 'x'})
	c.Read(make([]byte, 4))
	c.Write([]byte{0xe0, 0x00})
	// The records appear while the capture runs.
	mine := fmt.Sprintf(`"server":"127.0.0.1:%d"`, port)
	if !out.WaitFor(10*time.Second, func(s string) bool { return hasLine(s, mine, `"type":"CONNACK"`) }) {
		t.Fatalf("no CONNACK record while capturing; output so far:\n%s", out.String())
	}
	c.Close()
	// Stop once the capture has seen the connection close.
	if !out.WaitFor(10*time.Second, func(s string) bool { return hasLine(s, mine, `"kind":"close"`) }) {
		t.Fatalf("no close record while capturing; output so far:\n%s", out.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`mqscope: [1-9][0-9]* packets captured on lo(, none dropped|; the kernel dropped)`).MatchString(errb.String()) {
		t.Errorf("no capture statistics at the end: %q", errb.String())
	}
	// Other tests may talk MQTT on lo at the same time: only ours counts.
	var recs []map[string]any
	for _, r := range jsonLines(t, out.String()) {
		if r["server"] == fmt.Sprintf("127.0.0.1:%d", port) {
			recs = append(recs, r)
		}
	}
	if count(recs, "type", "CONNECT") != 1 || count(recs, "type", "DISCONNECT") != 1 || count(recs, "kind", "close") != 1 {
		t.Errorf("capture output:\n%s", out.String())
	}
	// --write recorded the connection from its SYN: reading it again tells the same story.
	code, again, errOut := runCmd(t, "", "read", "--format", "jsonl", o.out.write)
	if code != 0 {
		t.Fatalf("reading the recording: %s", errOut)
	}
	wantMode(t, o.out.write, 0o600) // it holds the CONNECTs' passwords
	var back []map[string]any
	for _, r := range jsonLines(t, again) {
		if r["server"] == fmt.Sprintf("127.0.0.1:%d", port) {
			back = append(back, r)
		}
	}
	if count(back, "type", "CONNECT") != 1 || count(back, "type", "CONNACK") != 1 || count(back, "type", "DISCONNECT") != 1 {
		t.Errorf("recording read back:\n%s", again)
	}
	for _, r := range back {
		notes, _ := r["notes"].([]any)
		for _, n := range notes {
			if n.(map[string]any)["rule"] == inspect.RuleMidStream {
				t.Errorf("the recording misses the start of the connection: %v", r)
			}
		}
	}
	if tshark := peer.Require(t, "tshark"); tshark != "" {
		out, err := exec.Command(tshark, "-r", o.out.write, "-Y", fmt.Sprintf("tcp.port == %d && tcp.flags.syn == 1", port), "-T", "fields", "-e", "frame.number").Output()
		if err != nil || len(strings.Fields(string(out))) != 2 {
			t.Errorf("tshark finds %q SYN and SYN-ACK in the recording (%v), want 2", out, err)
		}
	}
}

// startCapture runs capture with o until cancel is called (its result then comes on done),
// and returns once it captures; it skips the test when capturing is not permitted.
func startCapture(t *testing.T, o *captureOptions) (cancel func(), done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	ready := make(chan struct{})
	o.ready = func() { close(ready) }
	go func() { res <- runCapture(ctx, o) }()
	select {
	case err := <-res:
		cancel()
		if errors.Is(err, capture.ErrPermission) && !peer.Required() {
			t.Skipf("live capture not permitted: %v", err)
		}
		t.Fatalf("capture ended at once: %v", err)
	case <-ready:
	}
	return cancel, res
}

// TestReadNothingFound: a capture without MQTT says so, and how to find MQTT on other ports.
func TestReadNothingFound(t *testing.T) {
	p := filepath.Join(t.TempDir(), "http.pcapng")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	sw, _ := pcapng.NewStreamWriter(f)
	now := time.Now()
	s, _ := sw.Open(netip.MustParseAddrPort("192.0.2.2:40000"), netip.MustParseAddrPort("192.0.2.1:80"), now)
	s.Write(stream.C2S, now, []byte("GET / HTTP/1.1\r\n\r\n"))
	s.Close(stream.C2S, now)
	sw.Flush()
	f.Close()
	code, out, errOut := runCmd(t, "", "read", p)
	if code != 0 || out != "" || !strings.Contains(errOut, "no MQTT connection in 7 packets") || !strings.Contains(errOut, "--port") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// captureWriter starts a capture file name in a temporary directory: sw writes its
// connections, tick is the next time (a millisecond after the last), enc encodes a packet, and
// done writes the file out. p is its path.
func captureWriter(t *testing.T, name string) (p string, sw *pcapng.StreamWriter, tick func() time.Time, enc func(decode.Packet) []byte, done func()) {
	t.Helper()
	p = filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	sw, _ = pcapng.NewStreamWriter(f)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tick = func() time.Time { now = now.Add(time.Millisecond); return now }
	enc = func(p decode.Packet) []byte {
		b, err := decode.Encode(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	done = func() {
		if err := sw.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return p, sw, tick, enc, done
}

// TestReadSessionTakeover: in a capture, a second connection with the same Client Identifier
// takes the session over; read links the two on every core, among connections that keep the
// workers busy, the same as the proxy does live.
func TestReadSessionTakeover(t *testing.T) {
	p, sw, tick, enc, done := captureWriter(t, "takeover.pcapng")
	open := func(port int, id string) *pcapng.TCPStream {
		s, err := sw.Open(netip.AddrPortFrom(netip.MustParseAddr("192.0.2.2"), uint16(port)), netip.MustParseAddrPort("192.0.2.1:1883"), tick())
		if err != nil {
			t.Fatal(err)
		}
		s.Write(stream.C2S, tick(), enc(&decode.Connect{Base: decode.Base{Version: decode.V5}, CleanStart: true, KeepAlive: 60, ClientID: id}))
		s.Write(stream.S2C, tick(), enc(&decode.Connack{Base: decode.Base{Version: decode.V5}}))
		return s
	}
	first := open(40000, "twin")
	var others []*pcapng.TCPStream
	for i := range 16 {
		others = append(others, open(41000+i, fmt.Sprintf("dev-%d", i)))
	}
	second := open(40001, "twin")
	first.Write(stream.S2C, tick(), enc(&decode.Disconnect{Base: decode.Base{Version: decode.V5}, ReasonCode: decode.SessionTakenOver, HasReason: true}))
	first.Close(stream.S2C, tick())
	for _, s := range append(others, second) {
		s.Close(stream.C2S, tick())
	}
	done()

	code, out, errOut := runCmd(t, "", "read", "--format", "jsonl", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var takeover, takenOver bool
	for _, r := range jsonLines(t, out) {
		notes, _ := r["notes"].([]any)
		for _, n := range notes {
			switch n.(map[string]any)["rule"] {
			case inspect.RuleTakeover:
				takeover = r["type"] == "CONNECT" && r["conn"] == float64(18)
			case inspect.RuleTakenOver:
				takenOver = r["type"] == "DISCONNECT" && r["conn"] == float64(1)
			}
		}
	}
	if !takeover || !takenOver {
		t.Errorf("takeover noted on connection 18's CONNECT: %v; on connection 1's DISCONNECT 0x8E: %v\n%s", takeover, takenOver, out)
	}
}

// clientHello is a TLS record holding a ClientHello that asks for server name sni.
func clientHello(sni string) []byte {
	name := append([]byte{0, byte(len(sni) >> 8), byte(len(sni))}, sni...)
	list := append([]byte{byte(len(name) >> 8), byte(len(name))}, name...)
	ext := append([]byte{0, 0, byte(len(list) >> 8), byte(len(list))}, list...)
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...)    // random
	body = append(body, 0, 0, 2, 0x13, 1, 1, 0) // no session id, one cipher suite, null compression
	body = append(body, byte(len(ext)>>8), byte(len(ext)))
	body = append(body, ext...)
	hs := append([]byte{1, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{0x16, 3, 1, byte(len(hs) >> 8), byte(len(hs))}, hs...)
}

// TestReadOtherTLS: in the TLS capture, the connection that offers MQTT by ALPN is listed on
// its own; the other is counted at the end, and --tls-port lists both.
func TestReadOtherTLS(t *testing.T) {
	const file = "../../testdata/captures/mqtt-tls.pcapng"
	code, out, errOut := runCmd(t, "", "read", "--format", "jsonl", file)
	recs := jsonLines(t, out)
	if code != 0 || len(recs) != 1 || recs[0]["kind"] != "tls" || fmt.Sprint(recs[0]["alpn"]) != "[mqtt]" ||
		!strings.Contains(errOut, "TLS connections left out: 1 ") {
		t.Errorf("exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "", "read", "--format", "jsonl", "--tls-port", "18836", file)
	if recs := jsonLines(t, out); code != 0 || count(recs, "kind", "tls") != 2 || strings.Contains(errOut, "left out") {
		t.Errorf("with --tls-port: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestReadWriteRefusals: --write refuses, before creating anything, to overwrite its input
// (by name or through a link) and to read a pipe twice; the input is left as it was.
func TestReadWriteRefusals(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile(multiCapture)
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in.pcapng")
	link := filepath.Join(dir, "link.pcapng")
	fifo := filepath.Join(dir, "fifo")
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(in, link); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.pcapng")
	for _, tc := range []struct{ write, input, want string }{
		{in, in, "would be overwritten"},
		{link, in, "would be overwritten"},
		{out, fifo, "not a regular file"},
	} {
		code, _, errOut := runCmd(t, "", "read", "--summary", "--write", tc.write, tc.input)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("--write %s %s: exit %d, %q", filepath.Base(tc.write), filepath.Base(tc.input), code, errOut)
		}
	}
	if b, _ := os.ReadFile(in); !bytes.Equal(b, raw) {
		t.Errorf("the input changed: %d bytes, was %d", len(b), len(raw))
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s was created", out)
	}
}

// TestReadLostSegment removes, with Wireshark's editcap, one segment of a real capture (a
// client's QoS 1 PUBLISH that the broker received and acknowledged). The broker's PUBACK for
// it is only information, that the PUBLISH may be in the bytes the capture lost; the loss is
// reported on the client's next PUBLISH, which comes before the PUBACKs that answer it.
func TestReadLostSegment(t *testing.T) {
	editcap := peer.Require(t, "editcap")
	cut := filepath.Join(t.TempDir(), "lost.pcapng")
	if b, err := exec.Command(editcap, "../../testdata/captures/mqtt5-session.pcapng", cut, "40").CombinedOutput(); err != nil {
		t.Fatalf("editcap: %v: %s", err, b)
	}
	_, full, _ := runCmd(t, "", "read", "--format", "jsonl", "../../testdata/captures/mqtt5-session.pcapng")
	code, out, errOut := runCmd(t, "", "read", "--format", "jsonl", cut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	pubs := map[string]bool{}
	var gaps, unknown int
	for _, r := range jsonLines(t, out) {
		var lost bool
		notes, _ := r["notes"].([]any)
		for _, n := range notes {
			n := n.(map[string]any)
			switch n["rule"] {
			case inspect.RuleCaptureGap:
				gaps++
			case inspect.RuleAckUnknown:
				unknown++
				lost = n["level"] == "info" && strings.Contains(n["text"].(string), "the capture lost bytes from the client")
				if !lost {
					t.Errorf("unknown acknowledgement not put down to the loss: %v", r)
				}
			}
		}
		key := fmt.Sprint(r["conn"], r["packet_id"])
		switch {
		case r["type"] == "PUBLISH" && r["qos"] != 0.0:
			pubs[key] = true
		case r["type"] == "PUBACK" && r["dir"] == "s2c" && !pubs[key] && !lost:
			t.Errorf("PUBACK before its PUBLISH: %v", r)
		}
	}
	if gaps != 1 || unknown != 1 {
		t.Errorf("%d gaps and %d unknown acknowledgements, want 1 and 1:\n%s", gaps, unknown, out)
	}
	if a, b := strings.Count(full, `"type":"PUBLISH"`), strings.Count(out, `"type":"PUBLISH"`); b != a-1 {
		t.Errorf("%d PUBLISH records, %d in the whole capture", b, a)
	}
}

// TestReadFilterErrors: packets a filter cannot be evaluated on are left out and counted at
// the end, with the first failure and where it was; comparisons with a missing field are no
// failure.
func TestReadFilterErrors(t *testing.T) {
	const file = "../../testdata/captures/mqtt5-session.pcapng"
	code, out, errOut := runCmd(t, "", "read", "--format", "jsonl", "--filter", `type == "PUBLISH" || qos + 1 > 1`, file)
	if recs := jsonLines(t, out); code != 0 || len(recs) == 0 || count(recs, "type", "PUBLISH") != len(recs)-count(recs, "kind", "session")-count(recs, "kind", "close") ||
		!regexp.MustCompile(`the filter failed on [1-9][0-9]* packets? \(left out of the output\); the first: filter: connection 1 packet 1 \(CONNECT\)`).MatchString(errOut) {
		t.Errorf("exit %d, %d records; stderr %q", code, len(recs), errOut)
	}
	if _, _, errOut := runCmd(t, "", "read", "--summary", "--filter", `properties.message_expiry_interval > 100 || type == "CONNECT"`, file); strings.Contains(errOut, "failed") {
		t.Errorf("a missing property compared: %q", errOut)
	}
}

// TestReadCompressed reads a capture compressed with zstd and lz4, by name, made by the
// reference tools (the zstd and lz4 commands): the output is the same as from the file. A
// damaged stream is an error that names the file and the compression.
func TestReadCompressed(t *testing.T) {
	_, want, _ := runCmd(t, "", "read", "--format", "jsonl", multiCapture)
	if strings.Count(want, `"kind":"packet"`) < 100 {
		t.Fatalf("the capture read by name:\n%s", want)
	}
	for _, tool := range []struct{ name, ext, out string }{{"zstd", ".zst", "-o"}, {"lz4", ".lz4", ""}} {
		t.Run(tool.name, func(t *testing.T) {
			bin := peer.Require(t, tool.name)
			out := filepath.Join(t.TempDir(), "multi.pcapng"+tool.ext)
			args := []string{"-q", "-f", multiCapture, out}
			if tool.out != "" {
				args = []string{"-q", "-f", multiCapture, tool.out, out}
			}
			if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v: %s", tool.name, err, b)
			}
			if code, got, errOut := runCmd(t, "", "read", "--format", "jsonl", out); code != 0 || got != want {
				t.Errorf("exit %d, %s; output differs: %v", code, errOut, got != want)
			}
			raw, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			raw[len(raw)/2] ^= 0xff
			bad := filepath.Join(t.TempDir(), "bad"+tool.ext)
			if err := os.WriteFile(bad, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			if code, _, errOut := runCmd(t, "", "read", "--summary", bad); code != 1 || !strings.Contains(errOut, "bad"+tool.ext) || !strings.Contains(errOut, tool.name) {
				t.Errorf("damaged: exit %d, %q", code, errOut)
			}
		})
	}
}

// TestReadTLSInPlace checks that an encrypted connection is listed where it began among the
// MQTT connections, in text, JSON lines and the summary, on one worker and on several.
func TestReadTLSInPlace(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mixed.pcapng")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	sw, _ := pcapng.NewStreamWriter(f)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tick := func() time.Time { now = now.Add(time.Second); return now }
	client := func(port int) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("192.0.2.2"), uint16(port))
	}
	mqtt := func(port int, id string) {
		s, err := sw.Open(client(port), netip.MustParseAddrPort("192.0.2.1:1883"), tick())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, CleanStart: true, ClientID: id})
		s.Write(stream.C2S, tick(), b)
		s.Close(stream.C2S, tick())
	}
	tls := func(port int, sni string) {
		s, err := sw.Open(client(port), netip.MustParseAddrPort("192.0.2.1:8883"), tick())
		if err != nil {
			t.Fatal(err)
		}
		s.Write(stream.C2S, tick(), clientHello(sni))
		s.Close(stream.C2S, tick())
	}
	mqtt(40000, "first")
	tls(40001, "broker.example")
	mqtt(40002, "third")
	tls(40003, "")
	sw.Flush()
	f.Close()

	// How each mode names connection n.
	modes := map[string]func(n int) string{
		"":        func(n int) string { return fmt.Sprintf(" [%d] ", n) },
		"jsonl":   func(n int) string { return fmt.Sprintf(`"conn":%d,`, n) },
		"summary": func(n int) string { return fmt.Sprintf("Connection %d ", n) },
	}
	for _, procs := range []int{1, 2} {
		prev := runtime.GOMAXPROCS(procs)
		for mode, name := range modes {
			args := []string{"read", p}
			switch mode {
			case "jsonl":
				args = append(args, "--format", "jsonl")
			case "summary":
				args = append(args, "--summary")
			}
			code, out, errOut := runCmd(t, "", args...)
			if code != 0 {
				t.Fatalf("%d workers, %q: exit %d: %s", procs, mode, code, errOut)
			}
			at := -1
			for n := 1; n <= 4; n++ {
				i := strings.Index(out, name(n))
				if i < 0 || i < at {
					t.Errorf("%d workers, %q: connection %d missing or out of place:\n%s", procs, mode, n, out)
				}
				at = i
			}
		}
		runtime.GOMAXPROCS(prev)
	}
	_, out, _ := runCmd(t, "", "read", "--format", "jsonl", p)
	recs := jsonLines(t, out)
	if count(recs, "kind", "tls") != 2 || count(recs, "server_name", "broker.example") != 1 {
		t.Errorf("want two tls records, one for broker.example:\n%s", out)
	}
	_, out, _ = runCmd(t, "", "read", "--summary", p)
	for _, w := range []string{"192.0.2.1:8883  TLS, encrypted: not decoded (server name: broker.example)", "(server name: not captured)"} {
		if !strings.Contains(out, w) {
			t.Errorf("summary without %q:\n%s", w, out)
		}
	}
}

// TestReadStdin reads a capture from standard input (- as the file), plain and compressed
// with gzip, and a gzip file by name: the output is the same as from the file.
func TestReadStdin(t *testing.T) {
	_, want, _ := runCmd(t, "", "read", "--format", "jsonl", multiCapture)
	if strings.Count(want, `"kind":"packet"`) < 100 {
		t.Fatalf("the capture read by name:\n%s", want)
	}
	raw, err := os.ReadFile(multiCapture)
	if err != nil {
		t.Fatal(err)
	}
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(raw)
	zw.Close()
	gz := filepath.Join(t.TempDir(), "multi.pcapng.gz")
	if err := os.WriteFile(gz, zipped.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, got, errOut := runCmd(t, "", "read", "--format", "jsonl", gz); code != 0 || got != want {
		t.Errorf("gzip file: exit %d, %s; output differs: %v", code, errOut, got != want)
	}
	for name, in := range map[string][]byte{"plain": raw, "gzip": zipped.Bytes()} {
		cmd := mqscopeProcess("read --format jsonl -")
		cmd.Stdin = bytes.NewReader(in)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		got, err := cmd.Output()
		if err != nil || string(got) != want {
			t.Errorf("%s on standard input: %v %s; output differs: %v", name, err, errb.String(), string(got) != want)
		}
	}
	// A truncated gzip stream is an error that names standard input.
	cmd := mqscopeProcess("read --summary -")
	cmd.Stdin = bytes.NewReader(zipped.Bytes()[:zipped.Len()/2])
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err == nil || !strings.Contains(errb.String(), "standard input: packet") {
		t.Errorf("half a gzip stream: %v, %q", err, errb.String())
	}
	// A damaged checksum at the end of the gzip stream is said as such, with where.
	bad := bytes.Clone(zipped.Bytes())
	bad[len(bad)-8] ^= 0xff
	badgz := filepath.Join(t.TempDir(), "bad.pcapng.gz")
	if err := os.WriteFile(badgz, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd(t, "", "read", "--summary", badgz); code != 1 || !strings.Contains(errOut, "bad.pcapng.gz") || !strings.Contains(errOut, "gzip: invalid checksum") || !strings.Contains(errOut, "at offset") {
		t.Errorf("gzip stream with a bad checksum: exit %d, %q", code, errOut)
	}
	for _, args := range [][]string{{"read", "-", "-"}, {"read", "--write", filepath.Join(t.TempDir(), "w.pcapng"), "-"}} {
		if code, _, errOut := runCmd(t, "", args...); code != 2 || !strings.Contains(errOut, "standard input") {
			t.Errorf("%q: exit %d, %q", args, code, errOut)
		}
	}
}

// TestReadPipe: reading a pipe, records are printed as the packets come, not when the input
// ends (tcpdump -w - | mqscope read -).
func TestReadPipe(t *testing.T) {
	raw, err := os.ReadFile(multiCapture)
	if err != nil {
		t.Fatal(err)
	}
	cmd := mqscopeProcess("read --format jsonl -")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out, errb peer.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if _, err := in.Write(raw); err != nil {
		t.Fatal(err)
	}
	// The input stays open: the records must come anyway.
	if !out.WaitFor(10*time.Second, func(s string) bool { return strings.Contains(s, `"type":"CONNACK"`) }) {
		t.Fatalf("no record while the pipe is open; output %q, errors %q", out.String(), errb.String())
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
}

// TestReadSummaryJSON: --summary with --format jsonl writes the session and close records of
// the full JSON lines, the same lines, and no packet record, on one worker and on several.
func TestReadSummaryJSON(t *testing.T) {
	_, full, _ := runCmd(t, "", "read", "--format", "jsonl", multiCapture)
	var want []string
	for _, line := range strings.Split(strings.TrimSpace(full), "\n") {
		if !strings.HasPrefix(line, `{"kind":"packet"`) {
			want = append(want, line)
		}
	}
	if len(want) < 10 {
		t.Fatalf("%d session and close records in\n%s", len(want), full)
	}
	for _, procs := range []int{1, 2} {
		prev := runtime.GOMAXPROCS(procs)
		code, got, errOut := runCmd(t, "", "read", "--summary", "--format", "jsonl", multiCapture)
		runtime.GOMAXPROCS(prev)
		if code != 0 || strings.TrimSpace(got) != strings.Join(want, "\n") {
			t.Errorf("%d workers: exit %d %s; got\n%s\nwant\n%s", procs, code, errOut, got, strings.Join(want, "\n"))
		}
	}
}

// TestReadSummaryFiltered: with --filter, the summary counts the packets that pass it, and
// still tells each connection's client id and limits, though its CONNECT and CONNACK did not
// pass.
func TestReadSummaryFiltered(t *testing.T) {
	const file = "../../testdata/captures/mqtt5-session.pcapng"
	_, all, _ := runCmd(t, "", "read", "--summary", file)
	code, got, errOut := runCmd(t, "", "read", "--summary", "--filter", `type == "PUBLISH"`, file)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// Connection head -> its CONNACK and limits lines.
	heads := func(s string) map[string][]string {
		m, head := map[string][]string{}, ""
		for _, line := range strings.Split(s, "\n") {
			if strings.HasPrefix(line, "Connection ") {
				head = line
				m[head] = nil
			} else if strings.HasPrefix(line, "  CONNACK 0x") || strings.Contains(line, "Maximum") {
				m[head] = append(m[head], line)
			}
		}
		return m
	}
	a, g := heads(all), heads(got)
	if len(g) < 5 {
		t.Fatalf("%d connections with a PUBLISH:\n%s", len(g), got)
	}
	for head, lines := range g {
		if want, ok := a[head]; !ok || len(lines) < 5 || !slices.Equal(lines, want) {
			t.Errorf("with the filter:\n%s\n%s\nwithout:\n%s", head, strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
	}
	if strings.Contains(got, "no CONNECT seen") || !regexp.MustCompile(`Packets: \d+ shown of \d+ \(PUBLISH \d+\)\n`).MatchString(got) || strings.Contains(got, "SUBSCRIBE") {
		t.Errorf("filtered summary:\n%s", got)
	}
}

// TestReadFromDumpcap pipes a live capture by Wireshark's dumpcap into mqscope read -, while
// mosquitto_pub publishes through mosquitto: the records come while the capture runs.
func TestReadFromDumpcap(t *testing.T) {
	dumpcap := peer.Require(t, "dumpcap")
	pub := peer.Require(t, "mosquitto_pub")
	m := peer.StartMosquitto(t)
	dc := exec.Command(dumpcap, "-i", "lo", "-f", fmt.Sprintf("tcp port %d", m.Port), "-w", "-")
	var dcErr peer.Buffer
	dc.Stderr = &dcErr
	mq := mqscopeProcess("read --format jsonl -")
	var err error
	if mq.Stdin, err = dc.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	var out, errb peer.Buffer
	mq.Stdout, mq.Stderr = &out, &errb
	if err := dc.Start(); err != nil {
		t.Fatal(err)
	}
	defer dc.Process.Kill()
	if err := mq.Start(); err != nil {
		t.Fatal(err)
	}
	defer mq.Process.Kill()
	deadline := time.Now().Add(60 * time.Second)
	if !dcErr.WaitFor(60*time.Second, func(s string) bool { return strings.Contains(s, "Capturing on") }) {
		if strings.Contains(dcErr.String(), "ermission") && !peer.Required() {
			t.Skipf("dumpcap may not capture here: %s", dcErr.String())
		}
		t.Fatalf("dumpcap did not start: %s", dcErr.String())
	}
	// dumpcap says "Capturing on" a moment before its socket sees
	// packets; a connection whose CONNECT it missed is not MQTT to
	// mqscope (the port is not 1883), so publish again until one is seen.
	for !strings.Contains(out.String(), `"topic":"dumpcap/test"`) || !strings.Contains(out.String(), `"type":"PUBACK"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no PUBLISH and PUBACK records while dumpcap runs; output %q, errors %q, dumpcap %q", out.String(), errb.String(), dcErr.String())
		}
		if b, err := exec.Command(pub, "-p", fmt.Sprint(m.Port), "-V", "mqttv5", "-q", "1", "-t", "dumpcap/test", "-m", "piped").CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub: %v: %s", err, b)
		}
		out.WaitFor(time.Second, func(s string) bool { return strings.Contains(s, `"type":"PUBACK"`) })
	}
	dc.Process.Signal(os.Interrupt)
	dc.Wait()
	if err := mq.Wait(); err != nil {
		t.Fatalf("mqscope read -: %v: %s", err, errb.String())
	}
	recs := jsonLines(t, out.String())
	n := count(recs, "type", "CONNECT")
	if n < 1 || count(recs, "type", "DISCONNECT") != n || count(recs, "kind", "close") != n || count(recs, "type", "PUBACK") != n {
		t.Errorf("records of %d whole mosquitto_pub connections:\n%s", n, out.String())
	}
}

// hasLine reports whether one line of s contains every one of parts.
func hasLine(s string, parts ...string) bool {
	for _, l := range strings.Split(s, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

// TestReadReuseSameOutput: reading on several workers hands the records of packets out again
// once they are written or counted (capture.Inspector.Reuse); the text, JSON lines and summary
// of a capture long enough for records to go round many times are those of one worker, which
// reuses nothing.
func TestReadReuseSameOutput(t *testing.T) {
	p, sw, tick, enc, done := captureWriter(t, "long.pcapng")
	v5 := decode.Base{Version: decode.V5}
	s, err := sw.Open(netip.MustParseAddrPort("192.0.2.2:40000"), netip.MustParseAddrPort("192.0.2.1:1883"), tick())
	if err != nil {
		t.Fatal(err)
	}
	sw.MSS = 199 // packets split across segments, several to a segment
	s.Write(stream.C2S, tick(), enc(&decode.Connect{Base: v5, CleanStart: true, ClientID: "reuse", KeepAlive: 60}))
	s.Write(stream.S2C, tick(), enc(&decode.Connack{Base: v5}))
	var c2s, s2c []byte
	for i := 1; i <= 20000; i++ {
		qos := byte(i % 2)
		pub := &decode.Publish{Base: v5, QoS: qos, Topic: fmt.Sprintf("reuse/%d", i%7), Payload: []byte(strings.Repeat(string(rune('a'+i%26)), i%90))}
		if i%100 == 0 {
			pub.Topic = "reuse/#" // a finding: records with notes among those without
		}
		if qos > 0 {
			pub.PacketID = uint16(i)
			s2c = append(s2c, enc(&decode.Ack{Base: v5, PacketType: decode.PUBACK, PacketID: uint16(i)})...)
		}
		if i%50 == 0 {
			c2s = append(c2s, enc(&decode.Pingreq{Base: v5})...)
		}
		c2s = append(c2s, enc(pub)...)
		if len(c2s) > 2000 {
			s.Write(stream.C2S, tick(), c2s)
			s.Write(stream.S2C, tick(), s2c)
			c2s, s2c = c2s[:0], s2c[:0]
		}
	}
	s.Write(stream.C2S, tick(), c2s)
	s.Write(stream.S2C, tick(), s2c)
	s.Close(stream.C2S, tick())
	done()

	for _, mode := range [][]string{{}, {"--format", "jsonl"}, {"--summary"}, {"--format", "jsonl", "--payload", "full"}} {
		var outs [2]string
		for i, procs := range []int{1, 2} {
			prev := runtime.GOMAXPROCS(procs)
			code, out, errOut := runCmd(t, "", append([]string{"read", p}, mode...)...)
			runtime.GOMAXPROCS(prev)
			if code != 0 {
				t.Fatalf("%v, %d workers: exit %d: %s", mode, procs, code, errOut)
			}
			outs[i] = out
		}
		if outs[0] != outs[1] {
			t.Errorf("read %v: two workers (records reused) write something else than one", mode)
		}
		if n := strings.Count(outs[0], "\n"); n < 10 {
			t.Errorf("read %v: %d lines", mode, n)
		}
	}
}
