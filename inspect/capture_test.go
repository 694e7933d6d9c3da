package inspect

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/stream"
)

// replayed is one TCP connection of a capture fed to a Conn.
type replayed struct {
	tstream int
	conn    *Conn
	recs    []Record
}

// packets returns the packet records.
func (r *replayed) packets() []*PacketRecord {
	var out []*PacketRecord
	for _, x := range r.recs {
		if p, ok := x.(*PacketRecord); ok {
			out = append(out, p)
		}
	}
	return out
}

// session returns the session record, nil when there is none.
func (r *replayed) session() *SessionRecord {
	for _, x := range r.recs {
		if s, ok := x.(*SessionRecord); ok {
			return s
		}
	}
	return nil
}

// clientID returns the Client Identifier of the connection's CONNECT.
func (r *replayed) clientID() string { return r.conn.Snapshot().Requested.ClientID }

// replay extracts the TCP payloads of a capture with tshark (capture cannot be imported here:
// it imports inspect) and feeds each TCP tstream to its own Conn; the side with port
// serverPort is the broker.
func replay(t testing.TB, file string, serverPort int, opts Options) []*replayed {
	t.Helper()
	tshark := peer.Require(t, "tshark")
	path := filepath.Join("..", "testdata", "captures", file)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("capture %s not there yet: %v", file, err)
	}
	out, err := exec.Command(tshark, "-r", path, "-Y", "tcp.len>0", "-T", "fields", "-e", "frame.time_epoch",
		"-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.payload").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	conns := map[int]*replayed{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) < 5 {
			continue
		}
		sec, _ := strconv.ParseFloat(f[0], 64)
		ts := time.Unix(0, int64(sec*1e9)).UTC()
		tstream, _ := strconv.Atoi(f[1])
		src, _ := strconv.Atoi(f[2])
		dst, _ := strconv.Atoi(f[3])
		payload, err := hex.DecodeString(strings.ReplaceAll(f[4], ":", ""))
		if err != nil {
			t.Fatalf("payload hex: %v", err)
		}
		dir, client := stream.C2S, src
		if src == serverPort {
			dir, client = stream.S2C, dst
		}
		rc := conns[tstream]
		if rc == nil {
			rc = &replayed{tstream: tstream, conn: NewConn(tstream, fmt.Sprintf("127.0.0.1:%d", client), fmt.Sprintf("127.0.0.1:%d", serverPort), opts)}
			conns[tstream] = rc
		}
		rc.recs = append(rc.recs, rc.conn.Feed(dir, ts, payload)...)
	}
	var list []*replayed
	for _, rc := range conns {
		list = append(list, rc)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].tstream < list[j].tstream })
	for _, rc := range list {
		if cr := rc.conn.Close(time.Time{}, stream.End{}); cr != nil {
			rc.recs = append(rc.recs, cr)
		}
	}
	if testing.Verbose() {
		w := NewTextWriter(os.Stdout, TextOptions{})
		for _, rc := range list {
			for _, r := range rc.recs {
				w.Write(r)
			}
		}
		w.Close()
	}
	return list
}

// byClientID returns the connection whose CONNECT had the given Client Identifier.
func byClientID(t testing.TB, list []*replayed, id string) *replayed {
	t.Helper()
	for _, rc := range list {
		if rc.clientID() == id {
			return rc
		}
	}
	t.Fatalf("no connection with client id %q", id)
	return nil
}

// firstOf returns the first packet record of type typ in direction d.
func firstOf(t testing.TB, rc *replayed, d stream.Dir, typ decode.Type) *PacketRecord {
	t.Helper()
	for _, p := range rc.packets() {
		if p.Dir == d && p.Type() == typ {
			return p
		}
	}
	t.Fatalf("connection %q: no %s %s", rc.clientID(), d, typ)
	return nil
}

func TestCaptureSession(t *testing.T) {
	list := replay(t, "mqtt5-session.pcapng", 18831, Options{})
	if len(list) == 0 {
		t.Fatal("no connections")
	}
	for _, rc := range list {
		for _, p := range rc.packets() {
			for _, n := range p.Notes {
				if n.Level == decode.LevelError {
					t.Errorf("stream %d %s #%d: %s %s", rc.tstream, p.Type(), p.Index, n.Rule, n.Text)
				}
			}
		}
	}
}

// TestCaptureLimits replays mosquitto configured with max_packet_size 200, max_topic_alias 2,
// max_qos 1, retain_available false and max_inflight_messages 2 (testdata/captures/gen.sh,
// scenario mqtt5_limits), and checks the effective limits, each finding and each cause link.
func TestCaptureLimits(t *testing.T) {
	list := replay(t, "mqtt5-limits.pcapng", 18834, Options{})
	want := Limits{ReceiveMaximum: 2, MaximumPacketSize: 200, TopicAliasMaximum: 2, MaximumQoS: 1, RetainAvailable: false,
		WildcardSubscriptionAvailable: true, SubscriptionIdentifiersAvailable: true, SharedSubscriptionAvailable: true}
	sessions := 0
	for _, rc := range list {
		s := rc.session()
		if s == nil || s.Version != decode.V5 || s.Granted.ReasonCode != 0 {
			continue
		}
		sessions++
		if s.Effective.C2S != want {
			t.Errorf("%s: effective client limits %+v, want %+v", rc.clientID(), s.Effective.C2S, want)
		}
	}
	if sessions < 10 {
		t.Errorf("only %d MQTT 5 sessions", sessions)
	}

	// Each breaking packet, the finding on it, and the server's DISCONNECT linked to it.
	for _, c := range []struct {
		client, rule string
		reason       decode.ReasonCode
		summary      string
	}{
		{"limits-raw-big", "MQTT-3.2.2-15", decode.PacketTooLarge, "PUBLISH #3, 278 bytes, over the 200-byte Maximum Packet Size granted in CONNACK"},
		{"limits-raw-q2", "MQTT-3.2.2-11", decode.QoSNotSupported, "PUBLISH #3, 30 bytes, QoS 2, above the Maximum QoS 1 granted in CONNACK"},
		{"limits-raw-retain", "MQTT-3.2.2-14", decode.RetainNotSupported, "PUBLISH #3, 31 bytes, RETAIN 1, though CONNACK said Retain Available 0"},
		{"limits-raw-alias0", "MQTT-3.3.2-8", decode.MalformedPacket, "PUBLISH #3, 35 bytes, Topic Alias is 0, which the standard forbids"},
		{"limits-raw-alias-unknown", RuleAliasUnknown, decode.ProtocolError, "PUBLISH #3, 15 bytes, empty topic with Topic Alias 2, never mapped on this connection"},
		{"limits-v5-alias", "MQTT-3.3.2-9", decode.TopicAliasInvalid, "PUBLISH #3, 29 bytes, Topic Alias 3, above the maximum 2 granted in CONNACK"},
	} {
		rc := byClientID(t, list, c.client)
		pub := firstOf(t, rc, stream.C2S, decode.PUBLISH)
		note(t, pub, c.rule)
		d := firstOf(t, rc, stream.S2C, decode.DISCONNECT)
		if got := d.Packet.(*decode.Disconnect).ReasonCode; got != c.reason {
			t.Errorf("%s: DISCONNECT 0x%02X, want 0x%02X", c.client, byte(got), byte(c.reason))
		}
		n := note(t, d, RuleDisconnectError)
		if n.Cause == nil || n.Cause.Index != pub.Index || n.Cause.Summary != c.summary {
			t.Errorf("%s: cause %+v, want %q", c.client, n.Cause, c.summary)
		}
	}

	// Wills the broker cannot honour: CONNACK refuses, linked to the CONNECT.
	for client, summary := range map[string]string{
		"limits-v5-will-retain": "Will Retain true",
		"limits-v5-will-q2":     "Will QoS 2",
	} {
		rc := byClientID(t, list, client)
		n := note(t, firstOf(t, rc, stream.S2C, decode.CONNACK), RuleConnackRefused)
		if n.Cause == nil || n.Cause.Index != 1 || !strings.HasSuffix(n.Cause.Summary, summary) {
			t.Errorf("%s: cause %+v", client, n.Cause)
		}
	}

	// A CONNECT over the broker's max_packet_size is dropped without CONNACK.
	rc := byClientID(t, list, "limits-v5-big-connect")
	cr := rc.recs[len(rc.recs)-1].(*CloseRecord)
	if len(cr.Notes) == 0 || cr.Notes[0].Rule != RuleCloseNoDisc || !strings.Contains(cr.Notes[0].Text, "before any CONNACK") {
		t.Errorf("close notes %+v", cr.Notes)
	}

	// max_inflight_messages 2: the broker holds back a third QoS 1 message until the subscriber
	// acknowledges one; then mosquitto 2.0.11 releases every queued message at once (3 in
	// flight, legal here since the subscriber set no Receive Maximum). Nobody exceeds a Receive
	// Maximum that was announced.
	for _, client := range []string{"limits-raw-inflight-v5", "limits-raw-inflight-v311"} {
		rc := byClientID(t, list, client)
		inflight, peak, before := map[uint16]bool{}, 0, 0
		for _, p := range rc.packets() {
			switch q := p.Packet.(type) {
			case *decode.Publish:
				if p.Dir == stream.S2C && q.QoS > 0 {
					inflight[q.PacketID] = true
					peak = max(peak, len(inflight))
				}
			case *decode.Ack:
				if before == 0 {
					before = peak
				}
				delete(inflight, q.PacketID)
			}
			noNote(t, p, "MQTT-3.3.4-9")
			noNote(t, p, "MQTT-3.3.4-7")
		}
		if before != 2 || peak != 3 {
			t.Errorf("%s: in flight %d before the first PUBACK (want max_inflight_messages 2), %d at most (want 3)", client, before, peak)
		}
	}
	for _, p := range byClientID(t, list, "limits-inflight-pub").packets() {
		clean(t, p)
	}
}

// TestCaptureOthers replays MQTT 3.1.1 sessions (with a refused login) and many concurrent
// connections: the only error is the refusal, linked to the CONNECT with its password redacted.
func TestCaptureOthers(t *testing.T) {
	for _, c := range []struct {
		file string
		port int
	}{{"mqtt311-session.pcapng", 18832}, {"mqtt-multi.pcapng", 18833}} {
		t.Run(c.file, func(t *testing.T) {
			list := replay(t, c.file, c.port, Options{})
			if len(list) < 5 {
				t.Fatalf("%d connections", len(list))
			}
			for _, rc := range list {
				for _, p := range rc.packets() {
					for _, n := range p.Notes {
						if n.Level != decode.LevelError {
							continue
						}
						if rc.clientID() == "mqscope311-intruder" && n.Rule == RuleConnackRefused && n.Cause != nil &&
							n.Cause.Summary == `CONNECT #1, 49 bytes, user name "mqscope", password (redacted)` {
							continue
						}
						t.Errorf("stream %d (%s) %s #%d: %s %s", rc.tstream, rc.clientID(), p.Type(), p.Index, n.Rule, n.Text)
					}
				}
			}
			if c.port == 18832 {
				note(t, firstOf(t, byClientID(t, list, "mqscope311-intruder"), stream.S2C, decode.CONNACK), RuleConnackRefused)
			}
		})
	}
}

// TestCaptureProfile replays real mosquitto sessions against the apsaramq profile: the
// device's requests that ApsaraMQ would change are flagged at CONNECT, and mosquitto's CONNACK
// is reported as not what that broker would send.
func TestCaptureProfile(t *testing.T) {
	p, err := LoadProfile("apsaramq")
	if err != nil {
		t.Fatal(err)
	}
	list := replay(t, "mqtt5-session.pcapng", 18831, Options{Profile: p})
	rc := byClientID(t, list, "mqscope-sub")
	if se := rc.conn.Snapshot().Requested.SessionExpiryInterval; se == nil || *se != 300 {
		t.Fatalf("capture changed: session expiry %v", se)
	}
	cn := firstOf(t, rc, stream.C2S, decode.CONNECT)
	if n := note(t, cn, RuleProfileSession); n.Text != "session expiry 300 s will be raised to 600 s by this broker (apsaramq)" {
		t.Errorf("%q", n.Text)
	}
	ack := firstOf(t, rc, stream.S2C, decode.CONNACK)
	if n := note(t, ack, RuleProfileMismatch); !strings.Contains(n.Text, "Topic Alias Maximum 30, CONNACK has 4") ||
		!strings.Contains(n.Text, "Maximum Packet Size 131072, CONNACK has none") {
		t.Errorf("%q", n.Text)
	}
}
