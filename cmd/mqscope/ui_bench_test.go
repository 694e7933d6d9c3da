package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/mqscope/mqscope/ui"
)

// BenchmarkUIMillion opens mqscope ui on a capture of a million MQTT packets (made by
// capture/benchgen) on a simulation screen and reports: the time to the first screen showing
// packets, the time to read the whole file, the time from pressing G (the end) to the screen
// showing the last packet selected, and the heap once everything is read (bytes per packet);
// and, measured in the same run, the ratio of the UI's reading time to mqscope read
// --format jsonl's on the same file.
//
//	go test ./cmd/mqscope -run '^$' -bench UIMillion -benchtime 1x
func BenchmarkUIMillion(b *testing.B) {
	p := filepath.Join(os.TempDir(), "mqscope-ui-million.pcapng")
	if _, err := os.Stat(p); err != nil {
		out, err := exec.Command("go", "run", "../../capture/benchgen", "-o", p, "-conns", "200", "-packets", "1000000").CombinedOutput()
		if err != nil {
			b.Fatalf("benchgen: %v\n%s", err, out)
		}
	}
	for b.Loop() {
		t0 := time.Now()
		ro := &readOptions{io: &streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}, files: []string{p}}
		ro.out.format, ro.out.payload = "jsonl", "preview"
		ro.io.Out = discard{}
		if err := runRead(context.Background(), ro); err != nil {
			b.Fatal(err)
		}
		readJSON := time.Since(t0)
		screen := tcell.NewSimulationScreen("UTF-8")
		screen.SetSize(160, 50)
		o := &readOptions{io: &streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}, files: []string{p}}
		o.out.format, o.out.payload = "text", "preview"
		var (
			mu                sync.Mutex
			start             = time.Now()
			first, pressed    time.Time
			firstAt, endAt    time.Duration
			readAt            time.Duration
			packets           int
			heap              uint64
			readDone, endDone = make(chan struct{}), make(chan struct{})
		)
		o.ui.screen = screen
		o.ui.read = func(m *ui.Model) {
			mu.Lock()
			readAt, packets = time.Since(start), m.Total()
			mu.Unlock()
			close(readDone)
		}
		o.ui.afterDraw = func(u *ui.UI, m *ui.Model) {
			mu.Lock()
			defer mu.Unlock()
			if first.IsZero() && m.Total() > 0 {
				first = time.Now()
				firstAt = first.Sub(start)
			}
			if row, rows := u.Selection(); !pressed.IsZero() && endAt == 0 && rows > 0 && row == rows-1 {
				endAt = time.Since(pressed)
				close(endDone)
			}
		}
		done := make(chan error, 1)
		go func() { done <- runReadUI(context.Background(), o) }()
		<-readDone
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = ms.HeapAlloc
		mu.Lock()
		pressed = time.Now()
		mu.Unlock()
		screen.InjectKey(tcell.KeyRune, 'G', tcell.ModNone)
		<-endDone
		screen.InjectKey(tcell.KeyRune, 'q', tcell.ModNone)
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(firstAt.Milliseconds()), "ms-first-screen")
		b.ReportMetric(float64(readAt.Milliseconds()), "ms-read-all")
		b.ReportMetric(float64(endAt.Microseconds())/1000, "ms-to-end")
		b.ReportMetric(float64(heap)/(1<<20), "MB-heap")
		b.ReportMetric(float64(heap)/float64(packets), "B/packet")
		b.ReportMetric(float64(packets), "packets")
		b.ReportMetric(float64(readAt)/float64(readJSON), "read-all/read-jsonl")
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
