package capture

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
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
		p := file(t, func(sw *StreamWriter) {
			var s *TCPStream
			if handshake {
				s, _ = sw.Open(cli, srv, ms(0))
			} else {
				s = &TCPStream{sw: sw, client: cli, server: srv, seq: [2]uint32{1000, 5000}}
			}
			must(t, s.segment(ClientToServer, ms(1), flagACK|flagPSH, c2s[:connectLen]))
			must(t, s.segment(ServerToClient, ms(2), flagACK|flagPSH, s2c))
			must(t, s.segment(ClientToServer, ms(3), flagACK|flagPSH, c2s[connectLen:]))
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
	p := file(t, func(sw *StreamWriter) {
		s := &TCPStream{sw: sw, client: cli, server: srv, seq: [2]uint32{1000, 5000}}
		must(t, s.segment(ClientToServer, ms(1), flagACK|flagPSH, c2s[:connectLen]))
		must(t, s.segment(ServerToClient, ms(2), flagACK|flagPSH, pub[7:]))
		must(t, s.segment(ClientToServer, ms(3), flagACK|flagPSH, c2s[connectLen:]))
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
