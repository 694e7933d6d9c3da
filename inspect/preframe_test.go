package inspect

import (
	"bytes"
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// preframeRun feeds the two directions in pieces of n bytes, losing 3 bytes of the client's
// stream after the piece at gapAt (none when gapAt < 0), and returns every record rendered as
// JSON and text. Without pre, the Conn does everything, and the records are rendered at the
// end. With pre, it is done as capture's reader does with Inspector.Reuse: a Preframer frames
// ahead and decodes what the Conn keeps (FeedWith), the Conn decodes the rest
// (FramedWith), and each step's records are rendered at once and handed back (Records.Put,
// and Records.Counted for those the Conn kept), their packets to be decoded into again; after
// each step it checks that the Conn keeps no record of a transient frame. With lend too, each
// piece is lent (FeedLent), then overwritten after Conn.Detach: the packets the Conn keeps must
// keep their bytes.
func preframeRun(t testing.TB, c2s, s2c []byte, n, gapAt int, opts Options, pre, lend bool) []byte {
	c := NewConn(1, "c", "s", opts)
	var p *Preframer
	var pool *Records
	if pre {
		p, pool = NewPreframer(opts), &Records{Counted: true}
	}
	var recs []Record // without pre
	var out []byte
	render := func(rs []Record) []byte {
		for _, r := range rs {
			out = AppendJSON(out, r, JSONOptions{})
			out = AppendText(out, r, TextOptions{})
		}
		return out
	}
	raws := map[int][]byte{} // with lend: the bytes of each packet, by index
	emit := func(rs []Record) {
		if pool == nil {
			recs = append(recs, rs...)
			return
		}
		checkKept(t, c, rs)
		out = render(rs)
		if lend {
			for _, r := range rs {
				if pr, ok := r.(*PacketRecord); ok && pr.Packet != nil {
					raws[pr.Index] = bytes.Clone(pr.Packet.Info().Raw)
				}
			}
		}
		pool.Put(rs)
	}
	var lent []byte
	feed := func(d stream.Dir, b []byte) {
		if p == nil {
			emit(c.Feed(d, t0, b))
			return
		}
		var fs []Framed
		var rest []byte
		if lend {
			lent = append(lent[:0], b...)
			fs, rest = p.FeedLent(d, t0, lent, nil)
		} else {
			fs, rest = p.FeedWith(d, t0, b, nil, true)
		}
		emit(c.FramedWith(fs, nil, pool))
		if rest != nil {
			emit(c.Feed(d, t0, rest))
		}
		if lend {
			c.Detach(pool)
			for i := range lent {
				lent[i] = 0xEE
			}
			checkOwned(t, c, raws)
		}
	}
	handover := func(d stream.Dir) {
		if p != nil {
			if held := p.Handover(d); held != nil {
				emit(c.Feed(d, t0, held))
			}
		}
	}
	for i, k := 0, 0; i < max(len(c2s), len(s2c)); i, k = i+n, k+1 {
		if i < len(c2s) {
			feed(stream.C2S, c2s[i:min(i+n, len(c2s))])
		}
		if i < len(s2c) {
			feed(stream.S2C, s2c[i:min(i+n, len(s2c))])
		}
		if k == gapAt {
			handover(stream.C2S)
			emit(c.Gap(stream.C2S, t0, 3))
		}
	}
	handover(stream.C2S)
	handover(stream.S2C)
	emit(c.Finish(t0))
	emit([]Record{c.Close(t0, stream.End{})})
	return render(recs)
}

// checkOwned fails t when a packet c keeps has lost the bytes it had when its record was
// emitted (raws, by index).
func checkOwned(t testing.TB, c *Conn, raws map[int][]byte) {
	t.Helper()
	kept := []*PacketRecord{c.connect, c.connack, c.disconnect[0], c.disconnect[1]}
	for d := range c.flight {
		for _, e := range c.flight[d] {
			kept = append(kept, e.rec)
		}
	}
	for _, r := range kept {
		if r != nil && !bytes.Equal(r.Packet.Info().Raw, raws[r.Index]) {
			t.Fatalf("%s #%d, kept by the Conn, changed with the bytes lent: % X, was % X", r.Type(), r.Index, r.Packet.Info().Raw, raws[r.Index])
		}
	}
}

// checkKept fails t when c keeps the record of a frame transient calls one it never keeps.
func checkKept(t testing.TB, c *Conn, recs []Record) {
	t.Helper()
	kept := map[*PacketRecord]string{c.connect: "CONNECT", c.connack: "CONNACK", c.disconnect[0]: "DISCONNECT", c.disconnect[1]: "DISCONNECT"}
	for d := range c.flight {
		for _, e := range c.flight[d] {
			kept[e.rec] = "in flight"
		}
	}
	for _, r := range recs {
		if pr, ok := r.(*PacketRecord); ok && pr.Packet != nil && transient(pr.Packet.Info().Raw) {
			if why, ok := kept[pr]; ok {
				t.Fatalf("the record of %s #%d, from a shared block, is kept by the Conn (%s)", pr.Type(), pr.Index, why)
			}
		}
	}
}

// FuzzPreframer checks that framing and decoding ahead (Preframer, Conn.Framed) changes
// nothing: whatever the bytes, their split, a loss or an unreadable header, the records are
// those of Conn.Feed alone.
func FuzzPreframer(f *testing.F) {
	connect, connack := enc(f, &decode.Connect{ClientID: "a", KeepAlive: 10}), enc(f, &decode.Connack{})
	pub := enc(f, publish("a/b", 1, 1, "hello", ip(decode.PropTopicAlias, 1)))
	puback := enc(f, ack(decode.PUBACK, 1, decode.Success))
	c311 := &decode.Connect{ClientID: "d", KeepAlive: 10}
	c311.Version = decode.V311
	ack311 := &decode.Connack{}
	ack311.Version = decode.V311
	pub311 := publish("t", 1, 7, "x")
	pub311.Version = decode.V311
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	f.Add(cat(connect, pub, pub), cat(connack, puback), uint8(3), int8(-1), uint16(0))
	f.Add(cat(connect, pub, pub, pub), cat(connack, puback, puback), uint8(5), int8(2), uint16(0))
	f.Add(cat(enc(f, c311), enc(f, pub311)), cat(enc(f, ack311)), uint8(16), int8(-1), uint16(0))
	// No CONNECT: the version is told by the packets.
	f.Add(cat(pub, pub), cat(puback, []byte{0x40, 0x02, 0x00, 0x01}), uint8(4), int8(-1), uint16(0))
	// An unreadable fixed header, then packets; a frame over the limit.
	f.Add(cat(connect, []byte{0x00, 0xff, 0xff, 0xff, 0xff, 0x7f}, pub), connack, uint8(7), int8(-1), uint16(0))
	f.Add(cat(connect, pub, bytes.Repeat([]byte{0x30, 0x7f}, 80), pub), connack, uint8(64), int8(-1), uint16(40))
	// A frame cut by the end of the capture, and by a loss: what the Preframer held must reach
	// the Conn (the close record names the unfinished frame; the loss is inside a frame).
	f.Add(cat(connect, pub[:5]), connack, uint8(64), int8(-1), uint16(0))
	f.Add(cat(connect, pub, pub[:6], pub), cat(connack, puback), uint8(5), int8(5), uint16(0))
	// Whole frames in a piece: lent, the PUBLISH in flight past it.
	f.Add(cat(connect, pub), cat(connack, puback), uint8(63), int8(-1), uint16(0))
	f.Fuzz(func(t *testing.T, c2s, s2c []byte, step uint8, gapAt int8, maxFrame uint16) {
		n := int(step%64) + 1
		opts := Options{MaxFrame: 1 << 16}
		if maxFrame > 0 {
			opts.MaxFrame = int(maxFrame)
		}
		want := preframeRun(t, c2s, s2c, n, int(gapAt), opts, false, false)
		if got := preframeRun(t, c2s, s2c, n, int(gapAt), opts, true, false); !bytes.Equal(got, want) {
			t.Fatalf("framed ahead:\n%s\nby the Conn alone:\n%s", got, want)
		}
		if got := preframeRun(t, c2s, s2c, n, int(gapAt), opts, true, true); !bytes.Equal(got, want) {
			t.Fatalf("framed ahead from bytes lent:\n%s\nby the Conn alone:\n%s", got, want)
		}
	})
}

// With Records.Counted, the record of a SUBSCRIBE or UNSUBSCRIBE comes back once answered, as
// an acknowledged PUBLISH's does: the next records are handed out from them.
func TestRecordsBackAfterSuback(t *testing.T) {
	c := NewConn(1, "c", "s", Options{})
	pool := &Records{Counted: true}
	p := NewPreframer(Options{})
	feed := func(d stream.Dir, b []byte) []Record {
		fs, rest := p.FeedWith(d, t0, b, nil, true)
		if rest != nil {
			t.Fatalf("handed back % x", rest)
		}
		return c.FramedWith(fs, nil, pool)
	}
	feed(stream.C2S, enc(t, &decode.Connect{ClientID: "r", KeepAlive: 10}))
	feed(stream.S2C, enc(t, &decode.Connack{}))
	for i, pair := range [][2]decode.Packet{
		{&decode.Subscribe{PacketID: 5, Subscriptions: []decode.Subscription{{Filter: "a/#", QoS: 1}}}, &decode.Suback{PacketID: 5, ReasonCodes: []decode.ReasonCode{1}}},
		{&decode.Unsubscribe{PacketID: 6, Filters: []string{"a/#"}}, &decode.Unsuback{PacketID: 6, ReasonCodes: []decode.ReasonCode{0}}},
	} {
		req := feed(stream.C2S, enc(t, pair[0]))[0].(*PacketRecord)
		if len(pool.free) != 0 {
			t.Fatalf("%d: %d records free before the answer", i, len(pool.free))
		}
		feed(stream.S2C, enc(t, pair[1]))
		if len(pool.free) != 1 || pool.free[0] != req {
			t.Fatalf("%d: free records %v after the answer, want the %s's", i, pool.free, req.Type())
		}
		pool.free = pool.free[:0]
	}
}
