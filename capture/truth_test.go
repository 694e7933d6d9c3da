package capture

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// inspectFiles reads files with one Inspector and returns every record it emitted.
func inspectFiles(t *testing.T, opts inspect.Options, files ...string) []inspect.Record {
	t.Helper()
	var out []inspect.Record
	in := &Inspector{Options: opts, Emit: func(r inspect.Record) error { out = append(out, r); return nil }}
	must(t, ReadFiles(context.Background(), files, NewAnalyzer(in, Options{}), nil))
	must(t, in.Close())
	return out
}

// packets returns the packet records among rs.
func packets(rs []inspect.Record) []*inspect.PacketRecord {
	var out []*inspect.PacketRecord
	for _, r := range rs {
		if pr, ok := r.(*inspect.PacketRecord); ok {
			out = append(out, pr)
		}
	}
	return out
}

// rulesOf lists the rules of a record's notes.
func rulesOf(r *inspect.PacketRecord) []string {
	var out []string
	for _, n := range r.Notes {
		out = append(out, n.Rule)
	}
	return out
}

// limitSession is an MQTT 5 session whose server grants tight limits, and a client that breaks
// each of them once.
func limitSession(t *testing.T) (c2s, s2c []byte) {
	c2s = enc(t,
		&decode.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: "late"},
		v5Publish("a/1", 3, 0, 0, "alias over the maximum"),
		v5Publish("a/2", 0, 2, 1, "QoS over the maximum"),
		&decode.Publish{Topic: "a/3", Retain: true, Payload: []byte("retained")},
		v5Publish("a/4", 0, 0, 0, strings.Repeat("x", 200)),
	)
	s2c = enc(t, &decode.Connack{Properties: decode.Properties{
		decode.IntProp(decode.PropTopicAliasMaximum, 2),
		decode.IntProp(decode.PropMaximumQoS, 1),
		decode.IntProp(decode.PropRetainAvailable, 0),
		decode.IntProp(decode.PropMaximumPacketSize, 100),
	}})
	return c2s, s2c
}

// TestLateStartWholeSession: a capture without the TCP handshake whose client stream begins
// with a CONNECT and whose server stream begins with a CONNACK holds the whole session, so
// every limit is checked as if the handshake had been captured.
func TestLateStartWholeSession(t *testing.T) {
	c2s, s2c := limitSession(t)
	connectLen, _ := decode.SplitFrame(c2s, 0)
	want := [][]string{
		nil, nil, // CONNECT, CONNACK
		{"MQTT-3.3.2-9"},  // alias 3 over 2
		{"MQTT-3.2.2-11"}, // QoS 2 over Maximum QoS 1
		{"MQTT-3.2.2-14"}, // retain when unavailable
		{"MQTT-3.2.2-15"}, // over the Maximum Packet Size
	}
	for _, handshake := range []bool{true, false} {
		p := file(t, func(sw *pcapng.StreamWriter) {
			var s *pcapng.TCPStream
			if handshake {
				s, _ = sw.Open(cli, srv, ms(0))
			} else {
				s = sw.OpenMid(cli, srv, 1000, 5000)
			}
			must(t, s.Segment(stream.C2S, ms(1), pcapng.ACK|pcapng.PSH, c2s[:connectLen]))
			must(t, s.Segment(stream.S2C, ms(2), pcapng.ACK|pcapng.PSH, s2c))
			must(t, s.Segment(stream.C2S, ms(3), pcapng.ACK|pcapng.PSH, c2s[connectLen:]))
		})
		rs := inspectFiles(t, inspect.Options{}, p)
		ps := packets(rs)
		if len(ps) != len(want) {
			t.Fatalf("handshake %v: %d packets, want %d", handshake, len(ps), len(want))
		}
		for i, pr := range ps {
			if got := rulesOf(pr); !slices.Equal(got, want[i]) {
				t.Errorf("handshake %v: %s #%d has %v, want %v", handshake, pr.Type(), pr.Index, got, want[i])
			}
		}
		for _, r := range rs {
			if cr, ok := r.(*inspect.CloseRecord); ok && (cr.State.MidStream || !cr.State.Negotiated) {
				t.Errorf("handshake %v: close state mid-stream %v, negotiated %v", handshake, cr.State.MidStream, cr.State.Negotiated)
			}
		}
	}
}

// TestLateStartServerCut: the client's stream begins with its CONNECT but the server's first
// bytes were not captured: the negotiation is unknown, so nothing is judged against it and
// nothing is said about packets "before CONNACK".
func TestLateStartServerCut(t *testing.T) {
	c2s, _ := limitSession(t)
	connectLen, _ := decode.SplitFrame(c2s, 0)
	pub := enc(t, v5Publish("down/x", 0, 0, 0, "some payload"), v5Publish("down/y", 0, 0, 0, "more"))
	p := file(t, func(sw *pcapng.StreamWriter) {
		s := sw.OpenMid(cli, srv, 1000, 5000)
		must(t, s.Segment(stream.C2S, ms(1), pcapng.ACK|pcapng.PSH, c2s[:connectLen]))
		must(t, s.Segment(stream.S2C, ms(2), pcapng.ACK|pcapng.PSH, pub[7:]))
		must(t, s.Segment(stream.C2S, ms(3), pcapng.ACK|pcapng.PSH, c2s[connectLen:]))
	})
	rs := inspectFiles(t, inspect.Options{}, p)
	for _, pr := range packets(rs) {
		for _, n := range pr.Notes {
			if n.Level == decode.LevelError {
				t.Errorf("%s #%d: %s %s", pr.Type(), pr.Index, n.Rule, n.Text)
			}
		}
	}
	for _, r := range rs {
		if cr, ok := r.(*inspect.CloseRecord); ok && !cr.State.MidStream {
			t.Error("close state: not mid-stream")
		}
	}
}

// closeOf returns the close record among rs.
func closeOf(t *testing.T, rs []inspect.Record) *inspect.CloseRecord {
	t.Helper()
	for _, r := range rs {
		if cr, ok := r.(*inspect.CloseRecord); ok {
			return cr
		}
	}
	t.Fatal("no close record")
	return nil
}

// TestVersionFromEvidence: when the CONNECT was not captured, the protocol version comes from
// packets that read as one version only, never from a default of 5, and the output says how
// it was decided; Options.Version forces it.
func TestVersionFromEvidence(t *testing.T) {
	pub1 := []byte{0x32, 0x09, 0, 3, 'a', '/', 'c', 0, 7, 'h', 'i'} // 3.1.1 QoS 1, id 7
	// A 3.1.1 PUBLISH whose payload begins with 0x00: as MQTT 5 that is an empty property list.
	pub0 := []byte{0x30, 0x07, 0, 3, 'a', '/', 'z', 0, 'b'}
	suback := []byte{0x90, 0x03, 0, 2, 0} // 3.1.1: QoS 0 granted; as 5: no reason codes
	cases := []struct {
		name    string
		version decode.Version // Options.Version
		write   func(s *pcapng.TCPStream)
		want    decode.Version // every packet's
		from    string
		noteOn  decode.Type // the packet that says how the version was decided
		// the TCP handshake is captured
		handshake bool
	}{
		{name: "CONNECT lost, 2-byte CONNACK", handshake: true, want: decode.V311, from: inspect.VersionFromPackets, noteOn: decode.CONNACK,
			write: func(s *pcapng.TCPStream) {
				c2s := append(append(append([]byte{}, connect...), pub1...), pingreq...)
				seg(t, s, stream.C2S, ms(1), len(connect), c2s[len(connect):])
				s.Skip(stream.C2S, len(c2s))
				must(t, s.Write(stream.S2C, ms(2), append(append([]byte{}, connack...), 0x40, 0x02, 0, 7, 0xd0, 0)))
			}},
		{name: "mid-stream 3.1.1 SUBACK", want: decode.V311, from: inspect.VersionFromPackets, noteOn: decode.SUBACK,
			write: func(s *pcapng.TCPStream) {
				must(t, s.Segment(stream.C2S, ms(1), pcapng.ACK|pcapng.PSH, pingreq))
				must(t, s.Segment(stream.S2C, ms(2), pcapng.ACK|pcapng.PSH, append(append([]byte{}, suback...), pub0...)))
			}},
		{name: "forced", version: decode.V311, want: decode.V311, from: inspect.VersionFromOption,
			write: func(s *pcapng.TCPStream) {
				must(t, s.Segment(stream.S2C, ms(2), pcapng.ACK|pcapng.PSH, append(append([]byte{}, pub0...), pub0...)))
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := file(t, func(sw *pcapng.StreamWriter) {
				s := sw.OpenMid(cli, srv, 1000, 5000)
				if tc.handshake {
					s, _ = sw.Open(cli, srv, ms(0))
				}
				tc.write(s)
			})
			rs := inspectFiles(t, inspect.Options{Version: tc.version}, p)
			ps := packets(rs)
			if len(ps) < 2 {
				t.Fatalf("%d packets", len(ps))
			}
			noted := tc.noteOn == 0
			for _, pr := range ps {
				// Before the packet that decides it, packets that read the same both ways may
				// say 5.
				if pr.Version != tc.want && noted && pr.Type() != decode.PUBLISH {
					t.Errorf("%s #%d decoded as %v, want %v", pr.Type(), pr.Index, pr.Version, tc.want)
				}
				if pub, ok := pr.Packet.(*decode.Publish); ok && pub.Topic == "a/z" && string(pub.Payload) != "\x00b" {
					t.Errorf("PUBLISH #%d payload %q: read as MQTT 5", pr.Index, pub.Payload)
				}
				for _, n := range pr.Notes {
					if n.Level == decode.LevelError {
						t.Errorf("%s #%d: %s %s", pr.Type(), pr.Index, n.Rule, n.Text)
					}
				}
				if pr.HasRule(inspect.RuleVersion) {
					noted = true
					if pr.Version != tc.want || pr.Type() != tc.noteOn {
						t.Errorf("the version is decided by %s #%d, want %s", pr.Type(), pr.Index, tc.noteOn)
					}
				}
			}
			if !noted {
				t.Error("no packet says how the version was decided")
			}
			if cr := closeOf(t, rs); cr.State.Version != tc.want || cr.State.VersionFrom != tc.from {
				t.Errorf("close state: version %v from %q, want %v from %q", cr.State.Version, cr.State.VersionFrom, tc.want, tc.from)
			}
		})
	}
}

// TestMidStreamLargeBinaryPublish: a capture that starts (no handshake) at a whole PUBLISH of
// tens of KB of binary payload, sent in MSS-sized segments, followed by ordinary packets.
// Resynchronisation must take the PUBLISH at the first byte (its reading chains cleanly to
// the end of what was captured), not a false frame boundary inside its payload.
func TestMidStreamLargeBinaryPublish(t *testing.T) {
	for seed := range 20 {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		payload := make([]byte, 30000+rng.IntN(20000))
		for i := range payload {
			payload[i] = byte(rng.Uint32())
		}
		big := &decode.Publish{Topic: "fw/image", QoS: 1, PacketID: 9, Payload: payload}
		c2s := enc(t, big, v5Publish("after/1", 0, 0, 0, "one"), &decode.Pingreq{}, v5Publish("after/2", 0, 1, 10, "two"))
		s2c := enc(t, &decode.Ack{PacketType: decode.PUBACK, PacketID: 9}, &decode.Pingresp{}, &decode.Ack{PacketType: decode.PUBACK, PacketID: 10})
		p := file(t, func(sw *pcapng.StreamWriter) {
			s := sw.OpenMid(cli, srv, 1000, 5000)
			for off, k := 0, 0; off < len(c2s); off, k = off+1448, k+1 {
				must(t, s.Segment(stream.C2S, ms(1+k), pcapng.ACK|pcapng.PSH, c2s[off:min(off+1448, len(c2s))]))
			}
			must(t, s.Segment(stream.S2C, ms(100), pcapng.ACK|pcapng.PSH, s2c))
		})
		rs := inspectFiles(t, inspect.Options{}, p)
		var got []string
		for _, pr := range packets(rs) {
			got = append(got, pr.Dir.String()+" "+pr.Type().String())
			for _, n := range pr.Notes {
				if n.Level <= decode.LevelWarning {
					t.Errorf("seed %d: %s #%d: %s %s", seed, pr.Type(), pr.Index, n.Rule, n.Text)
				}
			}
		}
		want := []string{"c2s PUBLISH", "c2s PUBLISH", "c2s PINGREQ", "c2s PUBLISH", "s2c PUBACK", "s2c PINGRESP", "s2c PUBACK"}
		if !slices.Equal(got, want) {
			t.Errorf("seed %d: packets %v, want %v", seed, got, want)
		}
	}
}

// TestFilesSameAddresses reads two files that hold different connections between the same
// addresses and ports (the same initial sequence numbers, too: a device that reconnects from
// the same port after a reboot): they are two connections, in time order whatever the order of
// the files, neither with the other's packets.
func TestFilesSameAddresses(t *testing.T) {
	session := func(at int, id string, closed bool) string {
		return file(t, func(sw *pcapng.StreamWriter) {
			s, _ := sw.Open(cli, srv, ms(at))
			must(t, s.Write(stream.C2S, ms(at+1), enc(t,
				&decode.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, ClientID: id},
				v5Publish("from/"+id, 0, 0, 0, "payload of "+id))))
			must(t, s.Write(stream.S2C, ms(at+2), enc(t, &decode.Connack{})))
			if closed {
				must(t, s.Close(stream.C2S, ms(at+3)))
			}
		})
	}
	for _, tc := range []struct {
		name   string
		closed bool // the first connection closes within its file
		swap   bool // the later file is given first
	}{
		{"first left open", false, false},
		{"first closed", true, false},
		{"files given in reverse order", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := session(0, "first", tc.closed), session(60000, "second", true)
			files := []string{a, b}
			if tc.swap {
				files = []string{b, a}
			}
			rs := inspectFiles(t, inspect.Options{}, files...)
			var got []string
			var last time.Time
			for _, r := range rs {
				if cr, ok := r.(*inspect.CloseRecord); ok && cr.Conn == 1 && !tc.closed {
					if !strings.Contains(cr.Reason(), "a new connection between the same addresses and ports began") {
						t.Errorf("first connection's close: %q", cr.Reason())
					}
				}
				pr, ok := r.(*inspect.PacketRecord)
				if !ok {
					continue
				}
				if pr.Time.Before(last) {
					t.Errorf("time runs backwards at conn %d #%d", pr.Conn, pr.Index)
				}
				last = pr.Time
				s := fmt.Sprintf("%d %s", pr.Conn, pr.Type())
				if p, ok := pr.Packet.(*decode.Publish); ok {
					s += " " + p.Topic
				}
				if len(pr.Notes) > 0 {
					s += fmt.Sprint(" ", pr.Notes)
				}
				got = append(got, s)
			}
			want := []string{"1 CONNECT", "1 PUBLISH from/first", "1 CONNACK", "2 CONNECT", "2 PUBLISH from/second", "2 CONNACK"}
			if !slices.Equal(got, want) {
				t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestConnectNotMQTTShown: a CONNECT whose protocol name is not MQTT on the MQTT port, at the
// start of a capture without the TCP handshake, is shown with its finding (MQTT-3.1.2-1), not
// passed over as bytes to resynchronise on.
func TestConnectNotMQTTShown(t *testing.T) {
	c := append([]byte{}, connect...)
	c[7] = 'X' // "MQTX"
	for _, handshake := range []bool{true, false} {
		p := file(t, func(sw *pcapng.StreamWriter) {
			s := sw.OpenMid(cli, srv, 1000, 5000)
			if handshake {
				s, _ = sw.Open(cli, srv, ms(0))
			}
			must(t, s.Segment(stream.C2S, ms(1), pcapng.ACK|pcapng.PSH, c))
			must(t, s.Segment(stream.S2C, ms(2), pcapng.ACK|pcapng.PSH, []byte{0x20, 0x02, 0x00, 0x01})) // 0x01: unacceptable protocol version
		})
		ps := packets(inspectFiles(t, inspect.Options{}, p))
		if len(ps) != 2 || ps[0].Type() != decode.CONNECT || !ps[0].HasRule("MQTT-3.1.2-1") || ps[1].Type() != decode.CONNACK {
			var got []string
			for _, pr := range ps {
				got = append(got, fmt.Sprint(pr.Type(), rulesOf(pr)))
			}
			t.Errorf("handshake %v: %v", handshake, got)
		}
	}
}

// TestFilesOverlapInTime: a second file whose packets, on the same addresses and ports, are
// older than the last packet of a connection the first file left open (captures that overlap
// in time) holds another connection, not bytes of the first: time going backwards begins it.
func TestFilesOverlapInTime(t *testing.T) {
	a := file(t, func(sw *pcapng.StreamWriter) {
		s, _ := sw.Open(cli, srv, ms(0))
		must(t, s.Write(stream.C2S, ms(1), enc(t,
			&decode.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, ClientID: "first"},
			v5Publish("from/first", 0, 0, 0, "payload of first"))))
		must(t, s.Write(stream.S2C, ms(2), enc(t, &decode.Connack{})))
		must(t, s.Write(stream.C2S, ms(90000), enc(t, &decode.Pingreq{}))) // left open, last seen at 90 s
	})
	b := file(t, func(sw *pcapng.StreamWriter) {
		s := sw.OpenMid(cli, srv, 7000, 9000) // its handshake not captured, at 50 s
		must(t, s.Write(stream.C2S, ms(50000), enc(t,
			&decode.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, ClientID: "second"},
			v5Publish("from/second", 0, 0, 0, "payload of second"))))
		must(t, s.Write(stream.S2C, ms(50001), enc(t, &decode.Connack{})))
		must(t, s.Close(stream.C2S, ms(50002)))
	})
	var got []string
	for _, r := range inspectFiles(t, inspect.Options{}, a, b) {
		switch r := r.(type) {
		case *inspect.PacketRecord:
			s := fmt.Sprintf("%d %s", r.Conn, r.Type())
			if p, ok := r.Packet.(*decode.Publish); ok {
				s += " " + p.Topic
			}
			got = append(got, s)
		case *inspect.CloseRecord:
			if r.Conn == 1 && !strings.Contains(r.Reason(), "packets from earlier in time") {
				t.Errorf("first connection's close: %q", r.Reason())
			}
		}
	}
	want := []string{"1 CONNECT", "1 PUBLISH from/first", "1 CONNACK", "1 PINGREQ", "2 CONNECT", "2 PUBLISH from/second", "2 CONNACK"}
	if !slices.Equal(got, want) {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestConnectWithoutSYNBeginsConnection: a CONNECT on the addresses and ports of a connection
// left open, later in time and without a SYN (another file, or a capture that missed the
// reconnect's handshake), begins another connection when its sequence numbers are far from the
// first's; a second CONNECT where the client's stream continues is one connection breaking
// MQTT-3.1.0-2.
func TestConnectWithoutSYNBeginsConnection(t *testing.T) {
	first := func(sw *pcapng.StreamWriter) *pcapng.TCPStream {
		s, _ := sw.Open(cli, srv, ms(0))
		must(t, s.Write(stream.C2S, ms(1), enc(t, &decode.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, ClientID: "first"})))
		must(t, s.Write(stream.S2C, ms(2), enc(t, &decode.Connack{})))
		must(t, s.Write(stream.C2S, ms(90000), enc(t, &decode.Pingreq{}))) // left open
		return s
	}
	second := enc(t, &decode.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, ClientID: "second"},
		v5Publish("from/second", 0, 0, 0, "payload"))
	summary := func(recs []inspect.Record) (got []string) {
		for _, r := range recs {
			if r, ok := r.(*inspect.PacketRecord); ok {
				got = append(got, fmt.Sprintf("%d %s %v", r.Conn, r.Type(), rulesOf(r)))
			}
		}
		return got
	}
	// Another file, later, its handshake not captured, other sequence numbers.
	a := file(t, func(sw *pcapng.StreamWriter) { first(sw) })
	b := file(t, func(sw *pcapng.StreamWriter) {
		s := sw.OpenMid(cli, srv, 0x70000000, 0x30000000)
		must(t, s.Write(stream.C2S, ms(100000), second))
		must(t, s.Write(stream.S2C, ms(100001), enc(t, &decode.Connack{})))
	})
	got := summary(inspectFiles(t, inspect.Options{}, a, b))
	want := []string{"1 CONNECT []", "1 CONNACK []", "1 PINGREQ []", "2 CONNECT []", "2 PUBLISH []", "2 CONNACK []"}
	if !slices.Equal(got, want) {
		t.Errorf("two files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The same connection, its client stream going on: one connection, a protocol error.
	one := file(t, func(sw *pcapng.StreamWriter) {
		s := first(sw)
		must(t, s.Write(stream.C2S, ms(100000), second))
	})
	got = summary(inspectFiles(t, inspect.Options{}, one))
	if len(got) != 5 || got[3] != "1 CONNECT [MQTT-3.1.0-2]" {
		t.Errorf("one connection:\n%s", strings.Join(got, "\n"))
	}
}
