package inspect

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// summaryConn returns the records of connection id's CONNECT and CONNACK, and a function
// returning the record of its close.
func summaryConn(t *testing.T, id int) (open []Record, close func() Record) {
	t.Helper()
	c := NewConn(id, "10.0.0.2:"+strconv.Itoa(1000+id), "10.0.0.1:1883", Options{})
	cn := &decode.Connect{ClientID: "dev" + strconv.Itoa(id), KeepAlive: 60}
	cn.Version = decode.V5
	ca := &decode.Connack{}
	ca.Version = decode.V5
	open = append(c.Feed(stream.C2S, t0, enc(t, cn)), c.Feed(stream.S2C, t0, enc(t, ca))...)
	return open, func() Record { return c.Close(t0, closeEnd("client-eof", "TCP FIN")) }
}

// heads returns the "Connection N" heads in out, in order.
func heads(out string) []string {
	var hs []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Connection ") {
			hs = append(hs, strings.Fields(l)[1])
		}
	}
	return hs
}

// TestSummaryStreams: a connection's summary is written once it has closed and every
// connection whose first record came before its own has been written; the live writer writes
// each as it closes. At the end, the output is that of a summary of all records at once.
func TestSummaryStreams(t *testing.T) {
	open1, close1 := summaryConn(t, 1)
	open2, close2 := summaryConn(t, 2)
	open3, close3 := summaryConn(t, 3)
	steps := []struct {
		recs       []Record
		want, live string // connections written so far, in order
	}{
		{append(open1, open2...), "", ""},
		{[]Record{close1()}, "1", "1"},
		{open3, "1", "1"},
		{[]Record{close3()}, "1", "1 3"}, // 3 waits behind 2, still open
		{[]Record{close2()}, "1 2 3", "1 3 2"},
	}
	var all []Record
	var sum, live bytes.Buffer
	sw, lw := NewSummaryWriter(&sum, TextOptions{}), NewLiveSummaryWriter(&live, TextOptions{})
	for i, st := range steps {
		for _, r := range st.recs {
			all = append(all, r)
			if err := sw.Write(r); err != nil {
				t.Fatal(err)
			}
			if err := lw.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		if got := strings.Join(heads(sum.String()), " "); got != st.want {
			t.Errorf("step %d: written %q, want %q", i, got, st.want)
		}
		if got := strings.Join(heads(live.String()), " "); got != st.live {
			t.Errorf("step %d, live: written %q, want %q", i, got, st.live)
		}
	}
	if len(sw.parts[0].conns) != 0 || len(sw.pending) != 0 {
		t.Errorf("kept %d connections and %d summaries after all were written", len(sw.parts[0].conns), len(sw.pending))
	}
	before := sum.String()
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	if sum.String() != before {
		t.Errorf("Close wrote more: %q", strings.TrimPrefix(sum.String(), before))
	}
	// The same as written at once at Close (as when every connection is still open).
	var once bytes.Buffer
	ow := NewSummaryWriter(&once, TextOptions{})
	for _, r := range all {
		if _, ok := r.(*CloseRecord); !ok {
			ow.Write(r)
		}
	}
	// Without close records, the summaries differ by their close lines only.
	ow.Close()
	if got, want := heads(once.String()), heads(sum.String()); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("at once: %v, streamed: %v", got, want)
	}
	if strings.Count(sum.String(), "\n\nConnection ") != 2 || strings.HasPrefix(sum.String(), "\n") {
		t.Errorf("summaries not separated by one blank line:\n%s", sum.String())
	}
}

// TestSummaryPartsStream: with parts filled on other goroutines, a closed connection is
// written only once Written has passed its first record and no connection before it in any
// part is still open.
func TestSummaryPartsStream(t *testing.T) {
	open1, close1 := summaryConn(t, 1)
	open2, close2 := summaryConn(t, 2)
	a, b := NewSummary(), NewSummary()
	var out bytes.Buffer
	sw := NewSummaryWriterOf(&out, TextOptions{}, a, b)
	seq := int64(0)
	add := func(p *Summary, recs ...Record) {
		for _, r := range recs {
			seq++
			p.Add(seq, r)
		}
	}
	add(b, open2...) // connection 2 first, in part b
	add(a, open1...)
	add(a, close1())
	if err := sw.Written(seq); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("connection 1 written while connection 2, before it, is open:\n%s", out.String())
	}
	add(b, close2())
	if err := sw.Written(seq); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(heads(out.String()), " "); got != "2 1" {
		t.Errorf("written %q, want \"2 1\"", got)
	}
	// A connection whose first record is past what Written says was added waits: another
	// part may yet add one that came before it.
	open3, close3 := summaryConn(t, 3)
	w := seq
	add(a, append(open3, close3())...)
	if err := sw.Written(w); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(heads(out.String()), " "); got != "2 1" {
		t.Errorf("written %q before Written passed connection 3's first record", got)
	}
	if err := sw.Written(seq); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(heads(out.String()), " "); got != "2 1 3" {
		t.Errorf("written %q, want \"2 1 3\"", got)
	}
}

// TestSummaryMemoryFollowsOpen: connections that opened and closed leave nothing behind but
// what was written.
func TestSummaryMemoryFollowsOpen(t *testing.T) {
	sw := NewSummaryWriter(io.Discard, TextOptions{})
	for id := 1; id <= 5000; id++ {
		open, close := summaryConn(t, id)
		for _, r := range append(open, close()) {
			if err := sw.Write(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	p := sw.parts[0]
	if len(p.conns) != 0 || len(p.order)-p.head != 0 || len(sw.pending) != 0 || len(p.done) != 0 {
		t.Errorf("after 5000 closed connections: %d open, %d in order, %d pending, %d done", len(p.conns), len(p.order)-p.head, len(sw.pending), len(p.done))
	}
	if len(p.order) > 2048 {
		t.Errorf("the order of first records holds %d slots for 0 open connections", len(p.order))
	}
}
