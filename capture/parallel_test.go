package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/inspect/payload"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// run reads files with an Inspector of the given number of workers and returns its JSON lines.
func runJSON(t *testing.T, workers int, filter func(*inspect.PacketRecord) bool, files ...string) string {
	t.Helper()
	return runJSONWith(t, workers, filter, Options{}, files...)
}

// runJSONWith is runJSON with the analyzer's options.
func runJSONWith(t *testing.T, workers int, filter func(*inspect.PacketRecord) bool, opts Options, files ...string) string {
	t.Helper()
	var buf bytes.Buffer
	o := inspect.JSONOptions{Payload: payload.Preview}
	w := inspect.NewJSONWriter(&buf, o)
	in := &Inspector{Emit: w.Write, Filter: filter, Workers: workers, Out: &buf}
	if workers > 1 {
		in.Render = func(b []byte, r inspect.Record) []byte { return append(inspect.AppendJSON(b, r, o), '\n') }
		in.Reuse = true
	}
	must(t, ReadFiles(context.Background(), files, NewAnalyzer(in, opts), nil))
	must(t, in.Close())
	must(t, w.Close())
	return buf.String()
}

func TestParallelSameOutput(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "captures", "*.pcapng"))
	c2sA, s2cA, c2sB, s2cB := v5Session(t)
	files = append(files, file(t, func(sw *pcapng.StreamWriter) {
		for i := 0; i < 50; i++ {
			s, _ := sw.Open(netip.AddrPortFrom(cli.Addr(), uint16(40000+i)), srv, ms(i))
			sw.MSS = 3 + i
			must(t, s.Write(stream.C2S, ms(i+1), c2sA))
			must(t, s.Write(stream.S2C, ms(i+2), s2cA))
			if i%2 == 1 {
				// The capture ends inside the client's last packet: the close record says so.
				must(t, s.Write(stream.C2S, ms(i+3), c2sB[:len(c2sB)-3]))
			} else {
				must(t, s.Write(stream.C2S, ms(i+3), c2sB))
			}
			must(t, s.Write(stream.S2C, ms(i+4), s2cB))
			must(t, s.Close(stream.C2S, ms(i+5)))
		}
	}))
	f, err := inspect.CompileFilter(`type == "PUBLISH"`)
	must(t, err)
	for _, file := range files {
		for _, filter := range []func(*inspect.PacketRecord) bool{nil, f.Match} {
			one := runJSON(t, 1, filter, file)
			if many := runJSON(t, 3, filter, file); one != many {
				t.Errorf("%s: 3 workers write something else than 1", file)
			}
			if one == "" {
				t.Errorf("%s: no output", file)
			}
		}
	}
}

// failingWriter fails every write once it has taken limit bytes, and counts the writes it
// was asked for after that.
type failingWriter struct {
	limit, n int
	after    int
}

var errFull = errors.New("full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n >= w.limit {
		w.after++
		return 0, errFull
	}
	w.n += len(p)
	return len(p), nil
}

// A write error of the rendered output ends the writing, whatever the workers render after
// it, and is the Inspector's error: with runs of events written at once, as with one write
// per event.
func TestParallelWriteError(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "captures", "*.pcapng"))
	o := inspect.JSONOptions{Payload: payload.Preview}
	for _, workers := range []int{2, 3} {
		w := &failingWriter{limit: 2000}
		in := &Inspector{Workers: workers, Out: w, Render: func(b []byte, r inspect.Record) []byte { return inspect.AppendJSONLine(b, r, o) }}
		must(t, ReadFiles(context.Background(), files, NewAnalyzer(in, Options{}), nil))
		if err := in.Close(); !errors.Is(err, errFull) {
			t.Errorf("%d workers: Close() = %v, want the write error", workers, err)
		}
		if w.after != 1 {
			t.Errorf("%d workers: %d writes after the failing one, want none", workers, w.after-1)
		}
	}
}

// runSummary reads files with an Inspector of the given number of workers and returns the
// summary it writes (with more than one, each worker counting its connections' records, which
// it hands out again: Inspector.Reuse).
func runSummary(t *testing.T, workers int, files ...string) string {
	t.Helper()
	var buf bytes.Buffer
	in := &Inspector{Workers: workers}
	var sw *inspect.SummaryWriter
	if workers > 1 {
		parts := make([]*inspect.Summary, workers)
		for k := range parts {
			parts[k] = inspect.NewSummary()
		}
		sw = inspect.NewSummaryWriterOf(&buf, inspect.TextOptions{}, parts...)
		in.Collect = func(k int, seq int64, r inspect.Record) { parts[k].Add(seq, r) }
		in.Collected = sw.Written
		in.Reuse = true
	} else {
		sw = inspect.NewSummaryWriter(&buf, inspect.TextOptions{})
		in.Emit = sw.Write
	}
	must(t, ReadFiles(context.Background(), files, NewAnalyzer(in, Options{}), nil))
	must(t, in.Close())
	must(t, sw.Close())
	return buf.String()
}

// With Reuse, frames are slices of the batches' bytes, which are used again once the batch is
// written (here overwritten first, poisonArenas): the records and summaries are those of one
// goroutine, which copies everything, also for the messages still in flight when their batch
// was done (acknowledged many batches later, or never) and the packets a connection keeps.
func TestParallelLentBytes(t *testing.T) {
	poisonArenas = true
	defer func() { poisonArenas = false }()
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "captures", "*.pcapng"))
	files = append(files, file(t, func(sw *pcapng.StreamWriter) {
		s, _ := sw.Open(cli, srv, ms(0))
		sw.MSS = 211 // packets split across segments, several to a segment
		must(t, s.Write(stream.C2S, ms(1), enc(t, &decode.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 600, ClientID: "lent",
			Properties: decode.Properties{decode.IntProp(decode.PropReceiveMaximum, 4000)}})))
		must(t, s.Write(stream.S2C, ms(2), enc(t, &decode.Connack{})))
		var c2s, s2c, late []byte
		for i := 1; i <= 6000; i++ {
			qos := byte(i % 3)
			id := uint16(0)
			if qos > 0 {
				id = uint16(i)
			}
			c2s = append(c2s, enc(t, v5Publish(fmt.Sprintf("lent/%d", i%5), 0, qos, id, strings.Repeat(string(rune('a'+i%26)), i%70)))...)
			switch {
			case qos == 1 && i%500 == 1:
				// Acknowledged 3,000 messages later: many batches on.
				late = append(late, enc(t, &decode.Ack{PacketType: decode.PUBACK, PacketID: id})...)
			case qos == 1 && i%1000 == 4:
				// Never acknowledged: in flight at the close.
			case qos == 1:
				s2c = append(s2c, enc(t, &decode.Ack{PacketType: decode.PUBACK, PacketID: id})...)
			case qos == 2:
				s2c = append(s2c, enc(t, &decode.Ack{PacketType: decode.PUBREC, PacketID: id})...)
				c2s = append(c2s, enc(t, &decode.Ack{PacketType: decode.PUBREL, PacketID: id})...)
				s2c = append(s2c, enc(t, &decode.Ack{PacketType: decode.PUBCOMP, PacketID: id})...)
			}
			if i%700 == 0 {
				c2s = append(c2s, enc(t, &decode.Subscribe{PacketID: uint16(60000 + i/700), Subscriptions: []decode.Subscription{{Filter: fmt.Sprintf("cmd/%d/#", i), QoS: 1}}})...)
				late = append(late, enc(t, &decode.Suback{PacketID: uint16(60000 + i/700), ReasonCodes: []decode.ReasonCode{1}})...)
			}
			if i%3000 == 0 {
				s2c, late = append(s2c, late...), late[:0]
			}
			if len(c2s) > 3000 {
				must(t, s.Write(stream.C2S, ms(i), c2s))
				must(t, s.Write(stream.S2C, ms(i), s2c))
				c2s, s2c = c2s[:0], s2c[:0]
			}
		}
		c2s = append(c2s, enc(t, &decode.Disconnect{})...)
		must(t, s.Write(stream.C2S, ms(7000), c2s))
		must(t, s.Write(stream.S2C, ms(7000), s2c))
		must(t, s.Close(stream.C2S, ms(7001)))
	}))
	for _, file := range files {
		if one, many := runJSON(t, 1, nil, file), runJSON(t, 3, nil, file); one != many {
			t.Errorf("%s: JSON of 3 workers differs from 1\n%s", file, firstDiff(one, many))
		}
		if one, many := runSummary(t, 1, file), runSummary(t, 2, file); one != many {
			t.Errorf("%s: summary of 2 workers differs from 1\n%s", file, firstDiff(one, many))
		}
	}
}

// firstDiff shows the first line where a and b differ.
func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return fmt.Sprintf("line %d:\n  %s\n  %s", i+1, la[i], lb[i])
		}
	}
	return fmt.Sprintf("%d lines, %d lines", len(la), len(lb))
}
