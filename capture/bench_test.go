package capture

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// benchFile generates a capture of about 200,000 MQTT packets over 200 connections once.
func benchFile(b *testing.B) string {
	return generated(b, "mqscope-bench-200k.pcapng", "-conns", "200", "-packets", "200000")
}

// generated returns the capture that benchgen writes with args, made once in the temporary
// directory under name.
func generated(b *testing.B, name string, args ...string) string {
	b.Helper()
	p := filepath.Join(os.TempDir(), name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	out, err := exec.Command("go", append([]string{"run", "./benchgen", "-o", p}, args...)...).CombinedOutput()
	if err != nil {
		b.Fatalf("benchgen: %v\n%s", err, out)
	}
	return p
}

type nopHandler struct{}
type nopConn struct{}

func (nopHandler) Open(*stream.Conn) stream.ConnObserver { return nopConn{} }
func (nopConn) Data(stream.Dir, time.Time, []byte)       {}
func (nopConn) Gap(stream.Dir, time.Time, int)           {}
func (nopConn) Close(time.Time, stream.End)              {}

// BenchmarkReassembly measures reading and reassembly alone.
func BenchmarkReassembly(b *testing.B) {
	p := benchFile(b)
	fi, _ := os.Stat(p)
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	for b.Loop() {
		a := NewAnalyzer(nopHandler{}, Options{})
		if err := ReadFiles(context.Background(), []string{p}, a, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInspectJSON measures the whole of read --format jsonl.
func BenchmarkInspectJSON(b *testing.B) {
	p := benchFile(b)
	fi, _ := os.Stat(p)
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	for b.Loop() {
		w := inspect.NewJSONWriter(io.Discard, inspect.JSONOptions{})
		in := &Inspector{Emit: w.Write}
		a := NewAnalyzer(in, Options{})
		if err := ReadFiles(context.Background(), []string{p}, a, nil); err != nil {
			b.Fatal(err)
		}
		w.Close()
	}
}

// BenchmarkInspectSummary measures the whole of read --summary.
func BenchmarkInspectSummary(b *testing.B) {
	p := benchFile(b)
	fi, _ := os.Stat(p)
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	for b.Loop() {
		readSummary(b, p)
	}
}

// readSummary does what read --summary does with the capture at p.
func readSummary(b *testing.B, p string) {
	w := inspect.NewSummaryWriter(io.Discard, inspect.TextOptions{})
	in := &Inspector{Emit: w.Write}
	a := NewAnalyzer(in, Options{})
	if err := ReadFiles(context.Background(), []string{p}, a, nil); err != nil {
		b.Fatal(err)
	}
	in.Close()
	w.Close()
}

// BenchmarkLargePublish measures read --summary on one connection carrying one PUBLISH of 4,
// 8, 16 and 32 MiB in 1,448-byte segments: assembling a frame from small pieces must cost time
// and memory in proportion to its size.
//
//	go test -run '^$' -bench LargePublish -benchtime 3x ./capture/
func BenchmarkLargePublish(b *testing.B) {
	for _, mib := range []int{4, 8, 16, 32} {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) {
			p := generated(b, fmt.Sprintf("mqscope-bench-publish-%dmib.pcapng", mib), "-publish", fmt.Sprint(mib))
			b.SetBytes(int64(mib) << 20)
			b.ReportAllocs()
			for b.Loop() {
				readSummary(b, p)
			}
		})
	}
}
