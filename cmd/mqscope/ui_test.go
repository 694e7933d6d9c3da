package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/gdamore/tcell/v2"

	"github.com/mqscope/mqscope/capture"
	"github.com/mqscope/mqscope/ui"
)

// TestUIUsage: the UI reads files, and refuses the flags of printed output.
func TestUIUsage(t *testing.T) {
	checkExits(t, []exitCase{
		{"ui without files", []string{"ui"}, exitUsage, "ui needs at least one capture file"},
		{"ui of standard input", []string{"ui", "-"}, exitUsage, "the UI reads files, not standard input"},
		{"read --ui --format", []string{"read", "--ui", "--format", "jsonl", sessionCapture}, exitUsage, "--format is for printed output, not for the UI"},
		{"ui bad filter", []string{"ui", "--filter", "type ==", sessionCapture}, exitUsage, "--filter"},
		{"capture --ui --summary", []string{"capture", "--ui", "--summary", "-i", "lo"}, exitUsage, "--summary is for printed output, not for the UI"},
	})
}

// TestUIRead: mqscope ui FILE reads every packet of the file into the screens (as many as
// mqscope read prints), and q quits.
func TestUIRead(t *testing.T) {
	var jsonl bytes.Buffer
	ro := &readOptions{io: &streams{Out: &jsonl, Err: &bytes.Buffer{}}, files: []string{limitsCapture}}
	ro.out.format, ro.out.payload = "jsonl", "none"
	if err := runRead(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	want := strings.Count(jsonl.String(), `{"kind":"packet"`)

	screen := tcell.NewSimulationScreen("UTF-8")
	o := &readOptions{io: &streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}, files: []string{limitsCapture}}
	o.out.format, o.out.payload = "text", "preview"
	got := make(chan int, 1)
	o.ui.screen = screen
	// Keys are injected once the UI has drawn: the screen is set up (Init) by then.
	drawn := make(chan struct{})
	var once sync.Once
	o.ui.afterDraw = func(*ui.UI, *ui.Model) { once.Do(func() { close(drawn) }) }
	o.ui.read = func(m *ui.Model) { got <- m.Total() }
	done := make(chan error, 1)
	go func() { done <- runReadUI(context.Background(), o) }()
	if n := <-got; n != want || n == 0 {
		t.Errorf("the UI holds %d packets, mqscope read prints %d", n, want)
	}
	<-drawn
	screen.InjectKey(tcell.KeyRune, 'q', tcell.ModNone)
	if err := <-done; err != nil {
		t.Errorf("ui: %v", err)
	}
}

// TestUIPanicRestores: a panic while reading stops the screens (restoring the terminal)
// before it is raised again.
func TestUIPanicRestores(t *testing.T) {
	screen := tcell.NewSimulationScreen("UTF-8")
	uo := &uiOptions{screen: screen}
	out := &outputOptions{format: "text", payload: "preview"}
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "boom") {
			t.Errorf("recovered %v, want the reader's panic", p)
		} else if !strings.Contains(p.(string), "TestUIPanicRestores.func") {
			t.Errorf("recovered %q, want where the reader panicked (its stack)", p)
		}
	}()
	_ = runUI(context.Background(), &streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}, out, uo, uiSource{
		name: "test", why: ui.WhyFile,
		run: func(context.Context, *capture.Inspector) error { panic("boom") },
	})
	t.Error("runUI returned instead of panicking")
}
