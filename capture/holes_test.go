package capture

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// writeCut writes pkts to a pcapng, cutting the frames whose index is in cut to snap bytes.
func writeCut(t *testing.T, pkts []gopacketPkt, snap int, cut ...int) string {
	t.Helper()
	var buf bytes.Buffer
	pw, err := pcapng.NewPacketWriter(&buf)
	must(t, err)
	for i, p := range pkts {
		d := p.data
		if slices.Contains(cut, i) {
			d = d[:min(len(d), snap)]
		}
		must(t, pw.WritePacket(pcapng.LinkEthernet, p.ci.Timestamp, d, len(p.data)))
	}
	must(t, pw.Flush())
	f := filepath.Join(t.TempDir(), "cut.pcapng")
	must(t, os.WriteFile(f, buf.Bytes(), 0o644))
	return f
}

// TestHoleFillerOrder: a segment cut by the snap length lies beyond a hole (its filler is
// queued), then an acknowledgement fills the hole before it: both fillers are gaps, in
// sequence order, and no filler zero comes out as data.
func TestHoleFillerOrder(t *testing.T) {
	lost, big := publish("a", 100), publish("b", 1000)
	var cutIdx int
	pkts := ethernetPackets(t, func(sw *pcapng.StreamWriter) {
		s, err := sw.Open(cli, srv, ms(0))
		must(t, err)
		must(t, s.Write(stream.C2S, ms(1), connect))
		must(t, s.Write(stream.S2C, ms(2), connack))
		// lost: the PUBLISH on "a"
		seg(t, s, stream.C2S, ms(3), len(lost), big) // frame 6, cut below
		cutIdx = 5
		s.Skip(stream.C2S, int(uint32(len(lost)+len(big))))
		must(t, s.Write(stream.S2C, ms(4), []byte{0xd0, 0x00})) // acknowledges it all
		must(t, s.Write(stream.C2S, ms(5), pingreq))
		must(t, s.Close(stream.C2S, ms(6)))
	})
	const snap = 200
	f := writeCut(t, pkts, snap, cutIdx)
	r := analyze(t, Options{Wait: time.Hour}, f)
	c := r.conns[0]
	kept := snap - 54
	want := string(connect) + fmt.Sprintf("<gap %d>", len(lost)) + string(big[:kept]) +
		fmt.Sprintf("<gap %d>", len(big)-kept) + string(pingreq)
	if got := string(c.data[stream.C2S]); got != want {
		t.Errorf("client stream\n%q\nwant\n%q\nevents %q", got, want, c.events)
	}
}

// TestHoleWrapFiller: a hole straddling the sequence wrap (2^32), filled when acknowledged,
// is one gap of the right size (reassembly.Sequence.Difference is one short across the wrap).
func TestHoleWrapFiller(t *testing.T) {
	lost, after := publish("a", 500), publish("b", 10)
	p := file(t, func(sw *pcapng.StreamWriter) {
		s := sw.OpenMid(cli, srv, 0xFFFFFF00-1, 5000)
		must(t, s.Segment(stream.C2S, ms(0), pcapng.SYN, nil))
		must(t, s.Segment(stream.S2C, ms(0), pcapng.SYN|pcapng.ACK, nil))
		must(t, s.Segment(stream.C2S, ms(0), pcapng.ACK, nil))
		must(t, s.Write(stream.C2S, ms(1), connect))
		must(t, s.Write(stream.S2C, ms(2), connack))
		seg(t, s, stream.C2S, ms(3), len(lost), after) // after the lost one
		s.Skip(stream.C2S, int(uint32(len(lost)+len(after))))
		must(t, s.Write(stream.S2C, ms(4), []byte{0xd0, 0x00})) // acknowledges it all
		must(t, s.Write(stream.C2S, ms(5), pingreq))
		must(t, s.Close(stream.C2S, ms(6)))
	})
	r := analyze(t, Options{Wait: time.Hour}, p)
	c := r.conns[0]
	want := string(connect) + fmt.Sprintf("<gap %d>", len(lost)) + string(after) + string(pingreq)
	if got := string(c.data[stream.C2S]); got != want {
		t.Errorf("client stream\n%q\nwant\n%q\nevents %q", got, want, c.events)
	}
}

// TestHoleAckBeforeData: no loss, but the capture has the server's acknowledgement 1 ms
// before the client's segment it acknowledges (two taps merged, skewed clocks; or mergecap
// of per-direction captures): the segment is decoded, not turned into a gap.
func TestHoleAckBeforeData(t *testing.T) {
	pub := publish("a", 100)
	p := file(t, func(sw *pcapng.StreamWriter) {
		s, err := sw.Open(cli, srv, ms(0))
		must(t, err)
		must(t, s.Write(stream.C2S, ms(1), connect))
		must(t, s.Write(stream.S2C, ms(2), connack))
		off := 0
		s.Skip(stream.C2S, int(uint32(len(pub))))
		must(t, s.Write(stream.S2C, ms(3), []byte{0xd0, 0x00})) // acks the PUBLISH
		s.Skip(stream.C2S, -int(uint32(len(pub))))
		seg(t, s, stream.C2S, ms(4), off, pub) // captured a little later
		s.Skip(stream.C2S, int(uint32(len(pub))))
		must(t, s.Write(stream.C2S, ms(5), pingreq))
		must(t, s.Close(stream.C2S, ms(6)))
	})
	r := analyze(t, Options{Wait: time.Hour}, p)
	c := r.conns[0]
	if want := string(connect) + string(pub) + string(pingreq); string(c.data[stream.C2S]) != want {
		t.Errorf("client stream %q\nevents %q", c.data[stream.C2S], c.events)
	}
}

// TestHoleHoleSegmentsCap: more than maxHoleSegments segments queued beyond a hole, then a
// captured segment inside the hole arrives: the acknowledgement's filler stops at it rather
// than overwrite it (the nearest segments are the ones tracked).
func TestHoleHoleSegmentsCap(t *testing.T) {
	big := publish("big", 2000)
	c2s := append(append([]byte{}, connect...), big...)
	L := len(connect) + 10
	p := file(t, func(sw *pcapng.StreamWriter) {
		s, err := sw.Open(cli, srv, ms(0))
		must(t, err)
		seg(t, s, stream.C2S, ms(1), 0, c2s[:L])
		must(t, s.Write(stream.S2C, ms(2), connack))
		// [L, L+100) lost; [L+100, L+200) captured after what follows
		for off := L + 200; off < len(c2s); off += 20 {
			seg(t, s, stream.C2S, ms(3), off, c2s[off:min(off+20, len(c2s))])
		}
		seg(t, s, stream.C2S, ms(4), L+100, c2s[L+100:L+200])
		s.Skip(stream.C2S, int(uint32(len(c2s))))
		must(t, s.Write(stream.S2C, ms(5), []byte{0xd0, 0x00})) // acknowledges it all
		must(t, s.Close(stream.C2S, ms(6)))
	})
	r := analyze(t, Options{Wait: time.Hour}, p)
	c := r.conns[0]
	if !slices.Contains(c.events, "c2s gap 100") {
		t.Errorf("events %q, want a gap of 100", c.events)
	}
}

// TestHoleLostFIN: the capture lost only the client's FIN (no data); the server's FIN-ACK
// acknowledges it: no data gap is reported.
func TestHoleLostFIN(t *testing.T) {
	p := file(t, func(sw *pcapng.StreamWriter) {
		s, err := sw.Open(cli, srv, ms(0))
		must(t, err)
		must(t, s.Write(stream.C2S, ms(1), connect))
		must(t, s.Write(stream.S2C, ms(2), connack))
		s.Skip(stream.C2S, 1) // the FIN, not captured
		must(t, s.Segment(stream.S2C, ms(3), pcapng.FIN|pcapng.ACK, nil))
		must(t, s.Segment(stream.C2S, ms(3), pcapng.ACK, nil))
	})
	r := analyze(t, Options{Wait: time.Hour}, p)
	c := r.conns[0]
	for _, e := range c.events {
		if strings.Contains(e, "gap") {
			t.Errorf("events %q", c.events)
			break
		}
	}
}

// TestHoleNoLoss: keep-alives, zero-window probes, retransmissions, overlaps, a RST, a
// reused 4-tuple: no gap.
func TestHoleNoLoss(t *testing.T) {
	pub := publish("a", 300)
	p := file(t, func(sw *pcapng.StreamWriter) {
		for i, end := range []string{"fin", "fin", "rst"} {
			base := 100 * i
			s, err := sw.Open(cli, srv, ms(base))
			must(t, err)
			must(t, s.Write(stream.C2S, ms(base+1), connect))
			must(t, s.Write(stream.S2C, ms(base+2), connack))
			// keep-alive probes, with and without a byte
			must(t, s.SegmentAt(stream.C2S, ms(base+3), pcapng.ACK, s.Next(stream.C2S)-1, nil))
			must(t, s.SegmentAt(stream.C2S, ms(base+3), pcapng.ACK, s.Next(stream.C2S)-1, connect[len(connect)-1:]))
			must(t, s.SegmentAt(stream.S2C, ms(base+3), pcapng.ACK, s.Next(stream.S2C)-1, connack[3:]))
			cur := s.Next(stream.C2S)
			// zero-window probe: one new byte, not acknowledged, then sent again
			must(t, s.SegmentAt(stream.C2S, ms(base+4), pcapng.ACK|pcapng.PSH, cur, pub[:1]))
			must(t, s.Segment(stream.S2C, ms(base+4), pcapng.ACK, nil))
			// overlapping segments and a retransmission
			must(t, s.SegmentAt(stream.C2S, ms(base+5), pcapng.ACK|pcapng.PSH, cur, pub[:150]))
			must(t, s.SegmentAt(stream.C2S, ms(base+5), pcapng.ACK|pcapng.PSH, cur+100, pub[100:]))
			must(t, s.SegmentAt(stream.C2S, ms(base+5), pcapng.ACK|pcapng.PSH, cur, pub[:200]))
			s.Skip(stream.C2S, int(uint32(len(pub))))
			must(t, s.Write(stream.S2C, ms(base+6), []byte{0xd0, 0x00}))
			must(t, s.Write(stream.C2S, ms(base+8), pingreq))
			if end == "rst" {
				must(t, s.Reset(stream.S2C, ms(base+9)))
			} else {
				must(t, s.Close(stream.S2C, ms(base+9)))
				must(t, s.Segment(stream.S2C, ms(base+9), pcapng.ACK, nil))
			}
		}
	})
	r := analyze(t, Options{Wait: time.Hour}, p)
	if len(r.conns) != 3 {
		t.Fatalf("%d connections", len(r.conns))
	}
	for _, c := range r.conns {
		if got := string(c.data[stream.C2S]); got != string(connect)+string(pub)+string(pingreq) ||
			string(c.data[stream.S2C]) != string(connack)+"\xd0\x00" {
			t.Errorf("streams %q / %q, events %q", got, c.data[stream.S2C], c.events)
		}
	}
	if st := r.a.Stats(); st.Filled != 0 {
		t.Errorf("filled %d", st.Filled)
	}
}

// TestHoleReuseAfterRST: a connection reset by the server, then a new one on the same 4-tuple.
func TestHoleReuseAfterRST(t *testing.T) {
	p := file(t, func(sw *pcapng.StreamWriter) {
		for i := 0; i < 2; i++ {
			s, err := sw.Open(cli, srv, ms(100*i))
			must(t, err)
			must(t, s.Write(stream.C2S, ms(100*i+1), connect))
			must(t, s.Write(stream.S2C, ms(100*i+2), connack))
			must(t, s.Reset(stream.S2C, ms(100*i+3)))
		}
	})
	r := analyze(t, Options{Wait: time.Hour}, p)
	if len(r.conns) != 2 {
		t.Fatalf("%d connections", len(r.conns))
	}
}

// TestHoleRetryOnce: the packet that acknowledges unseen bytes (re-assembled after the
// filler) is kept and recorded once.
func TestHoleRetryOnce(t *testing.T) {
	p, _ := unseenLoss(t)
	kept := map[int64]int{}
	recorded := map[string]int{}
	r := analyze(t, Options{Wait: time.Hour, Keep: func(n int64) { kept[n]++ },
		Record: func(link int, ci gopacket.CaptureInfo, data []byte) { recorded[string(data)]++ }}, p)
	if len(r.conns) != 1 {
		t.Fatal(len(r.conns))
	}
	for n, k := range kept {
		if n == 6 && k != 1 { // the acknowledging packet (4 and 5 are kept 3 times before the change too)
			t.Errorf("packet %d kept %d times", n, k)
		}
	}
	for _, k := range recorded {
		if k != 1 {
			t.Errorf("a packet recorded %d times", k)
		}
	}
	t.Logf("kept %v, %d recorded", kept, len(recorded))
}

// streamCheck is a Handler that checks every byte delivered against the bytes sent: data at
// its place in the stream, gaps skipping over what was lost.
type streamCheck struct {
	sent  [2][]byte
	at    [2]int
	conns int
	err   error
	log   []string
}

func (c *streamCheck) Open(*stream.Conn) stream.ConnObserver { c.conns++; return c }

func (c *streamCheck) Data(d stream.Dir, _ time.Time, b []byte) {
	if c.err == nil && !bytes.Equal(b, c.sent[d][min(c.at[d], len(c.sent[d])):min(c.at[d]+len(b), len(c.sent[d]))]) {
		c.err = fmt.Errorf("%v: %d bytes at %d differ from those sent", d, len(b), c.at[d])
	}
	c.log = append(c.log, fmt.Sprintf("%v data %d at %d", d, len(b), c.at[d]))
	c.at[d] += len(b)
}

func (c *streamCheck) Gap(d stream.Dir, _ time.Time, n int) {
	c.log = append(c.log, fmt.Sprintf("%v gap %d at %d", d, n, c.at[d]))
	c.at[d] += n
}
func (c *streamCheck) Close(time.Time, stream.End) {}

// FuzzHoles plays a client stream as segments chosen by the fuzzer: sent and captured, sent
// and lost, cut by the snap length, retransmitted, out of order; and the server's
// acknowledgements of what was sent. Whatever the loss, every byte delivered is the byte
// sent at that place: fillers never come out as data, gaps never shift the stream.
func FuzzHoles(f *testing.F) {
	f.Add([]byte{0, 0, 0, 100, 1, 0, 100, 100, 2, 0, 0, 0, 0, 0, 200, 50, 6, 1, 0, 80, 2, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 60, 1, 0, 60, 60, 0, 0, 120, 60, 2, 0, 0, 0, 0, 0, 60, 60, 4, 0, 180, 200})
	f.Fuzz(func(t *testing.T, script []byte) {
		sent := make([]byte, 3000)
		for i := range sent {
			sent[i] = byte(i%251 + 1) // never zero: a filler zero delivered as data shows
		}
		sent[0] = 0x10
		sentMask := make([]bool, len(sent))
		var cut []int
		n := 0 // packets written
		pkts := ethernetPackets(t, func(sw *pcapng.StreamWriter) {
			s, err := sw.Open(cli, srv, ms(0))
			must(t, err)
			n = 3 // the handshake
			isn := s.Next(stream.C2S)
			seg(t, s, stream.C2S, ms(1), 0, sent[:10])
			copy(sentMask, []bool{true, true, true, true, true, true, true, true, true, true})
			n++
			for i := 0; i+4 <= len(script) && i < 400; i += 4 {
				op, off, l := script[i], (int(script[i+1])<<8|int(script[i+2]))%len(sent), int(script[i+3])%300+1
				l = min(l, len(sent)-off)
				at := ms(2 + i)
				switch op % 3 {
				case 0, 1: // a client segment, captured (0) or lost (1)
					for j := off; j < off+l; j++ {
						sentMask[j] = true
					}
					if op%3 == 0 {
						seg(t, s, stream.C2S, at, off, sent[off:off+l])
						if op&4 != 0 && l > 20 {
							cut = append(cut, n) // cut by the snap length
						}
						n++
					}
				case 2: // the server acknowledges a prefix of what was sent
					k := 0
					for k < len(sent) && sentMask[k] {
						k++
					}
					k = min(k, off)
					if op&8 == 0 {
						k = 0 // or a prefix that is all sent, possibly all of it
						for k < len(sent) && sentMask[k] {
							k++
						}
					}
					s.Skip(stream.C2S, int(isn+uint32(k)-s.Next(stream.C2S))) // what the server's segment acknowledges
					must(t, s.SegmentAt(stream.S2C, at, pcapng.ACK, s.Next(stream.S2C), nil))
					s.Skip(stream.C2S, int(isn-s.Next(stream.C2S))) // seg places the client's segments from here
					n++
				}
			}
		})
		f := writeCut(t, pkts, 14+20+20+10, cut...)
		h := &streamCheck{sent: [2][]byte{sent, nil}}
		must(t, ReadFiles(context.Background(), []string{f}, NewAnalyzer(h, Options{Wait: time.Hour}), nil))
		if h.err != nil {
			t.Fatalf("%v\n%s", h.err, strings.Join(h.log, "\n"))
		}
		if h.at[stream.C2S] > len(sent) {
			t.Fatalf("%d bytes delivered and skipped, %d sent", h.at[stream.C2S], len(sent))
		}
	})
}
