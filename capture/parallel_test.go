package capture

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"

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
