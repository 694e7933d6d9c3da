package capture

import (
	"context"
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
	b.Helper()
	p := filepath.Join(os.TempDir(), "mqscope-bench-200k.pcapng")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	out, err := exec.Command("go", "run", "./benchgen", "-o", p, "-conns", "200", "-packets", "200000").CombinedOutput()
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
		w := inspect.NewSummaryWriter(io.Discard, inspect.TextOptions{})
		in := &Inspector{Emit: w.Write}
		a := NewAnalyzer(in, Options{})
		if err := ReadFiles(context.Background(), []string{p}, a, nil); err != nil {
			b.Fatal(err)
		}
		in.Close()
		w.Close()
	}
}
