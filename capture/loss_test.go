package capture

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// TestLossResync loses bytes in the middle of a large PUBLISH (and, in another connection,
// of a Remaining Length): mqscope reports the gap on the next packet it decodes, finds the
// next frame boundary, and decodes no garbage.
func TestLossResync(t *testing.T) {
	big := publish("big/topic", 5000)
	var c2s []byte
	c2s = append(c2s, connect...)
	c2s = append(c2s, publish("a/b", 10)...)
	start := len(c2s)
	c2s = append(c2s, big...)
	for i := 0; i < 5; i++ {
		c2s = append(c2s, publish(fmt.Sprintf("after/%d", i), 20+i)...)
	}
	c2s = append(c2s, pingreq...)
	for _, tc := range []struct {
		name     string
		from, to int // lost stream bytes
	}{
		{"inside a payload", start + 1000, start + 2500},
		{"inside the Remaining Length and beyond", start + 1, start + 3000},
		{"the end of one packet and the start of the next", start + 4000, start + len(big) + 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := file(t, func(sw *pcapng.StreamWriter) {
				s, _ := sw.Open(cli, srv, ms(0))
				sw.MSS = 500
				for off := 0; off < len(c2s); off += 500 {
					end := min(off+500, len(c2s))
					if end <= tc.from || off >= tc.to {
						seg(t, s, stream.C2S, ms(1+off/500), off, c2s[off:end])
					} else if off < tc.from {
						seg(t, s, stream.C2S, ms(1+off/500), off, c2s[off:tc.from])
					} else if end > tc.to {
						seg(t, s, stream.C2S, ms(1+off/500), tc.to, c2s[tc.to:end])
					}
				}
				s.Skip(stream.C2S, int(uint32(len(c2s))))
				must(t, s.Write(stream.S2C, ms(50), connack))
				must(t, s.Close(stream.C2S, ms(60)))
			})
			var got []string
			gapNoted := false
			in := &Inspector{Emit: func(r inspect.Record) error {
				pr, ok := r.(*inspect.PacketRecord)
				if !ok || pr.Dir != stream.C2S {
					return nil
				}
				topic := ""
				if p, ok := pr.Packet.(*decode.Publish); ok {
					topic = p.Topic
				}
				got = append(got, pr.Type().String()+" "+topic)
				if pr.HasRule(inspect.RuleCaptureGap) {
					gapNoted = true
				}
				if lvl, ok := pr.MaxLevel(); ok && lvl == decode.LevelError && !pr.HasRule(inspect.RuleCaptureGap) {
					t.Errorf("garbage decoded: %s %v", pr.Type(), pr.Notes)
				}
				return nil
			}}
			must(t, ReadFiles(context.Background(), []string{p}, NewAnalyzer(in, Options{}), nil))
			must(t, in.Close())
			if !gapNoted {
				t.Error("no packet carries the capture-gap finding")
			}
			joined := strings.Join(got, "\n")
			for _, want := range []string{"CONNECT ", "PUBLISH a/b", "PUBLISH after/1", "PUBLISH after/4", "PINGREQ "} {
				if !strings.Contains(joined, want) {
					t.Errorf("missing %q in:\n%s", want, joined)
				}
			}
			if len(got) > 9 {
				t.Errorf("%d packets decoded, want at most 9:\n%s", len(got), joined)
			}
			// On several workers the client's stream is framed ahead until the loss, then
			// handed back to its Conn with the bytes held: the same records.
			if one, many := runJSON(t, 1, nil, p), runJSON(t, 3, nil, p); one != many {
				t.Errorf("3 workers write something else than 1:\n%s\nagainst\n%s", many, one)
			}
		})
	}
}

// TestMidStreamVersion: a capture that begins in the middle of an MQTT 5 connection (no
// handshake, the first bytes inside a PUBLISH) is decoded as MQTT 5 from what follows.
func TestMidStreamVersion(t *testing.T) {
	_, _, c2sB, s2cB := v5Session(t)
	p := file(t, func(sw *pcapng.StreamWriter) {
		s := sw.OpenMid(cli, srv, 1000, 5000)
		must(t, s.Segment(stream.C2S, ms(1), pcapng.ACK|pcapng.PSH, c2sB[5:]))
		must(t, s.Segment(stream.S2C, ms(2), pcapng.ACK|pcapng.PSH, s2cB))
	})
	var versions []decode.Version
	var closed *inspect.CloseRecord
	in := &Inspector{Emit: func(r inspect.Record) error {
		switch r := r.(type) {
		case *inspect.PacketRecord:
			versions = append(versions, r.Version)
		case *inspect.CloseRecord:
			closed = r
		}
		return nil
	}}
	must(t, ReadFiles(context.Background(), []string{p}, NewAnalyzer(in, Options{}), nil))
	must(t, in.Close())
	if len(versions) < 8 {
		t.Fatalf("%d packets decoded", len(versions))
	}
	for _, v := range versions {
		if v != decode.V5 {
			t.Errorf("version %v, want 5 (%v)", v, versions)
			break
		}
	}
	if closed == nil || !closed.State.MidStream || closed.State.Negotiated {
		t.Errorf("close record %+v: want mid-stream, not negotiated", closed)
	}
}
