package capture

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/stream"
)

// msg is one MQTT packet as both mqscope and tshark see it: in which connection (the
// client's port) and direction, and the fields both decode the same way.
type msg struct {
	Conn  string // client port -> server port
	Dir   string
	Type  int
	Len   int // Remaining Length
	ID    int // packet identifier, -1 when none
	Topic string
}

func (m msg) String() string {
	return fmt.Sprintf("%s %s type=%d len=%d id=%d topic=%q", m.Conn, m.Dir, m.Type, m.Len, m.ID, m.Topic)
}

// mqscopeMsgs reads a capture with mqscope's pipeline and takes the packets from its JSON
// lines, the output of mqscope read --format jsonl.
func mqscopeMsgs(t *testing.T, file string, opts Options) []msg {
	t.Helper()
	var buf bytes.Buffer
	w := inspect.NewJSONWriter(&buf, inspect.JSONOptions{})
	in := &Inspector{Emit: w.Write}
	must(t, ReadFiles(context.Background(), []string{file}, NewAnalyzer(in, opts), nil))
	must(t, in.Close())
	must(t, w.Close())
	var out []msg
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var r struct {
			Kind, Client, Server, Dir, Type, Topic string
			Size                                   int
			PacketID                               *int `json:"packet_id"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("JSON line %q: %v", line, err)
		}
		if r.Kind != "packet" {
			continue
		}
		typ := 0
		for ; typ < 16 && decode.Type(typ).String() != r.Type; typ++ {
		}
		m := msg{Dir: r.Dir, Type: typ, ID: -1, Topic: r.Topic}
		m.Conn = r.Client[strings.LastIndexByte(r.Client, ':')+1:] + "->" + r.Server[strings.LastIndexByte(r.Server, ':')+1:]
		if r.PacketID != nil {
			m.ID = *r.PacketID
		}
		// Compare the Remaining Length, which is what tshark shows.
		m.Len = r.Size - 1 - varIntLenOfSize(r.Size)
		if typ != 3 {
			m.Topic = ""
		}
		out = append(out, m)
	}
	return out
}

// varIntLenOfSize returns the length of the Remaining Length field of a packet of size bytes.
func varIntLenOfSize(size int) int {
	for n := 1; n <= 4; n++ {
		if rl := size - 1 - n; rl >= 0 && decode.VarIntLen(uint32(rl)) == n {
			return n
		}
	}
	return 1
}

// tsharkMsgs decodes a capture with tshark; args pick the dissector (-d ...).
func tsharkMsgs(t *testing.T, file string, serverPort string, args ...string) []msg {
	t.Helper()
	tshark := peer.Require(t, "tshark")
	argv := append([]string{"-r", file, "-o", "tcp.reassemble_out_of_order:TRUE", "-T", "json", "--no-duplicate-keys", "-J", "tcp mqtt", "-Y", "mqtt"}, args...)
	cmd := exec.Command(tshark, argv...)
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %q: %v", argv, err)
	}
	var frames []struct {
		Source struct {
			Layers map[string]json.RawMessage `json:"layers"`
		} `json:"_source"`
	}
	if err := json.Unmarshal(raw, &frames); err != nil {
		t.Fatalf("tshark JSON: %v", err)
	}
	var out []msg
	for _, f := range frames {
		var tcp map[string]any
		_ = json.Unmarshal(f.Source.Layers["tcp"], &tcp)
		src, dst := fmt.Sprint(tcp["tcp.srcport"]), fmt.Sprint(tcp["tcp.dstport"])
		conn, dir := src+"->"+dst, "c2s"
		if src == serverPort {
			conn, dir = dst+"->"+src, "s2c"
		}
		var layers []map[string]any
		m := f.Source.Layers["mqtt"]
		if len(m) > 0 && m[0] == '[' {
			_ = json.Unmarshal(m, &layers)
		} else {
			var one map[string]any
			_ = json.Unmarshal(m, &one)
			layers = []map[string]any{one}
		}
		for _, l := range layers {
			flags, _ := l["mqtt.hdrflags_tree"].(map[string]any)
			typ, err := strconv.Atoi(fmt.Sprint(flags["mqtt.msgtype"]))
			if err != nil {
				continue // not a whole packet ("continuation" and the like)
			}
			ln, _ := strconv.Atoi(fmt.Sprint(l["mqtt.len"]))
			id := -1
			if v, ok := l["mqtt.msgid"]; ok {
				id, _ = strconv.Atoi(fmt.Sprint(v))
			}
			topic := ""
			if typ == 3 {
				topic, _ = l["mqtt.topic"].(string)
			}
			out = append(out, msg{Conn: conn, Dir: dir, Type: typ, Len: ln, ID: id, Topic: topic})
		}
	}
	return out
}

// byConn groups messages by connection and direction, keeping their order.
func byConn(ms []msg) map[string][]string {
	g := map[string][]string{}
	for _, m := range ms {
		k := m.Conn + " " + m.Dir
		g[k] = append(g[k], m.String())
	}
	return g
}

// compare reports the differences between two decodings, connection by connection.
func compare(t *testing.T, ours, theirs []msg) {
	t.Helper()
	a, b := byConn(ours), byConn(theirs)
	for k, x := range a {
		y := b[k]
		if strings.Join(x, "\n") != strings.Join(y, "\n") {
			t.Errorf("%s: mqscope and tshark differ:\nmqscope:\n  %s\ntshark:\n  %s", k, strings.Join(x, "\n  "), strings.Join(y, "\n  "))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			t.Errorf("%s: only tshark sees MQTT here: %q", k, b[k])
		}
	}
	if len(ours) == 0 {
		t.Error("no MQTT packets")
	}
}

// TestTsharkAgreesOnCaptures compares mqscope with tshark on the captures of real traffic in
// testdata/captures (made by gen.sh from mosquitto and its clients).
func TestTsharkAgreesOnCaptures(t *testing.T) {
	dir := filepath.Join("..", "testdata", "captures")
	f, err := os.Open(filepath.Join(dir, "ports.tsv"))
	if err != nil {
		t.Skipf("no captures: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) < 3 {
			continue
		}
		name, port, decodeAs := cols[0], cols[1], cols[2]
		if strings.HasSuffix(decodeAs, ",tls") {
			t.Run(strings.TrimSuffix(name, ".pcapng"), func(t *testing.T) {
				p, err := strconv.ParseUint(port, 10, 16)
				if err != nil {
					t.Fatalf("ports.tsv: %v", err)
				}
				tlsAgree(t, filepath.Join(dir, name), uint16(p), decodeAs)
			})
			continue
		}
		t.Run(strings.TrimSuffix(name, ".pcapng"), func(t *testing.T) {
			file := filepath.Join(dir, name)
			args := []string{"-d", decodeAs}
			if strings.HasSuffix(decodeAs, ",http") {
				args = append(args, "-X", "lua_script:"+filepath.Join(dir, "ws-mqtt.lua"))
			}
			theirs := tsharkMsgs(t, file, port, args...)
			if fix := tsharkFaults[name]; fix != nil {
				theirs = fix(t, theirs)
			}
			ours := mqscopeMsgs(t, file, Options{})
			compare(t, ours, theirs)
			t.Logf("%d MQTT packets agree", len(ours))
		})
	}
}

// tsharkFaults correct tshark's known mistakes in the real captures, after checking that the
// mistake is there (so that a fixed tshark makes the test say so).
var tsharkFaults = map[string]func(*testing.T, []msg) []msg{
	// tshark does not reassemble a WebSocket message fragmented over several frames before
	// handing it to MQTT: it decodes the first fragment as a PUBLISH without its topic and the
	// next one as a PUBREL made of payload bytes.
	"mqtt-ws.pcapng": func(t *testing.T, ms []msg) []msg {
		for i := 0; i+1 < len(ms); i++ {
			if ms[i].Type == 3 && ms[i].Topic == "" && ms[i+1].Type == 6 && ms[i+1].Dir == ms[i].Dir {
				ms[i].Topic = "mqscope/ws/split"
				return append(ms[:i+1], ms[i+2:]...)
			}
		}
		t.Errorf("tshark decodes the fragmented stream.WebSocket message right now: drop this correction")
		return ms
	},
}

// tlsAgree checks that mqscope lists the TLS connections of a capture with the server names
// and ALPN protocols tshark finds in their ClientHellos: all of them when their port is given
// as a TLS port, and without it those that offer MQTT by ALPN.
func tlsAgree(t *testing.T, file string, port uint16, decodeAs string) {
	tshark := peer.Require(t, "tshark")
	out, err := exec.Command(tshark, "-r", file, "-d", decodeAs, "-Y", "tls.handshake.type == 1",
		"-T", "fields", "-E", "aggregator=,", "-e", "tcp.srcport", "-e", "tls.handshake.extensions_server_name",
		"-e", "tls.handshake.extensions_alpn_str").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	var all, mqtt []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		all = append(all, strings.TrimSpace(strings.ReplaceAll(l, "\t", " ")))
		if strings.Contains(strings.ToLower(strings.Split(l, "\t")[2]), "mqtt") {
			mqtt = append(mqtt, all[len(all)-1])
		}
	}
	if len(mqtt) == 0 || len(mqtt) == len(all) {
		t.Fatalf("the capture should have stream.TLS connections with and without an MQTT ALPN: %q", all)
	}
	for _, tc := range []struct {
		opts Options
		want []string
	}{{Options{TLSPorts: []uint16{port}}, all}, {Options{}, mqtt}} {
		r := &recorder{}
		must(t, ReadFiles(context.Background(), []string{file}, NewAnalyzer(r, tc.opts), nil))
		var ours []string
		for _, c := range r.conns {
			if c.info.Transport != stream.TLS {
				t.Errorf("connection %d is %v, want tls", c.info.ID, c.info.Transport)
			}
			ours = append(ours, strings.TrimSpace(fmt.Sprintf("%d %s %s", c.info.Client.Port(), c.info.ServerName, strings.Join(c.info.ALPN, ","))))
		}
		if strings.Join(ours, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("stream.TLS ports %v: mqscope %q, tshark %q", tc.opts.TLSPorts, ours, tc.want)
		}
		t.Logf("stream.TLS ports %v: %d stream.TLS connections agree", tc.opts.TLSPorts, len(ours))
	}
}
