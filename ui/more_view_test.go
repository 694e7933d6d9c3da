package ui

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// TestNoColor: with NO_COLOR every cell is in the terminal's own colours (findings, diffs
// and the selection are told by text and reverse video); with colours, only findings and
// diff lines have one, on the terminal's own background (readable on light and dark).
func TestNoColor(t *testing.T) {
	for _, noColor := range []bool{true, false} {
		m := fixtureModel(t)
		h := newTestUI(t, m, nil, 120, 36)
		h.u = New(m, nil, Options{Source: "fixture.pcapng", NoColor: noColor})
		h.u.host = h
		h.SetFocus(h.u.list)
		h.press("n", "n")
		cells, w, ht := h.screen.GetContents()
		colored := 0
		for i, c := range cells[:w*ht] {
			fg, bg, _ := c.Style.Decompose()
			if bg != tcell.ColorDefault {
				t.Errorf("NoColor %v: cell %d,%d has background %v", noColor, i%w, i/w, bg)
			}
			if fg != tcell.ColorDefault {
				colored++
			}
		}
		if noColor && colored > 0 {
			t.Errorf("NO_COLOR: %d cells coloured", colored)
		}
		if !noColor && colored == 0 {
			t.Error("colours on: the findings are not coloured")
		}
	}
}

// TestMouse: a click on a row selects its packet; a click in the tree gives it the keys.
func TestMouse(t *testing.T) {
	h := newTestUI(t, fixtureModel(t), nil, 120, 36)
	click := func(x, y int) { // as tview's Application tells a click: down, then click
		for _, a := range []tview.MouseAction{tview.MouseLeftDown, tview.MouseLeftClick} {
			h.u.root.MouseHandler()(a, tcell.NewEventMouse(x, y, tcell.Button1, tcell.ModNone), h.SetFocus)
		}
		h.u.refresh()
		h.draw()
	}
	// Row 5 of the list (y: border 1, header 2, rows from 3): packet #5 of connection 1.
	click(20, 7)
	if r := h.u.m.Packet(h.u.sel); r == nil || r.Index != 5 || r.Conn != 1 {
		t.Fatalf("clicked row 5, selected %+v", r)
	}
	_, y, _, _ := h.u.tree.GetInnerRect()
	click(10, y+1)
	if h.focus != h.u.tree {
		t.Errorf("a click in the tree left the keys with %T", h.focus)
	}
}

// TestCapOnScreen: the header says how many of the oldest packets were dropped past the cap.
func TestCapOnScreen(t *testing.T) {
	m := NewModel(8)
	for _, r := range fixture(t) {
		m.Add(r)
	}
	h := newTestUI(t, m, nil, 120, 36)
	if want := "8 oldest dropped (cap 8)"; !strings.Contains(h.text(), want) {
		t.Errorf("header lacks %q:\n%s", want, strings.SplitN(h.text(), "\n", 2)[0])
	}
}

// TestSearchListAndBytes: ctrl-f in the list finds the next row containing the text; in the
// bytes, hex or text, which is then highlighted.
func TestSearchListAndBytes(t *testing.T) {
	h := newTestUI(t, fixtureModel(t), nil, 120, 36)
	h.press("<ctrl-f>", "state", "<enter>")
	if r := h.u.m.Packet(h.u.sel); r == nil || r.Index != 7 {
		t.Fatalf("search state: selected %+v, want #7", r)
	}
	h.press("n")
	if r := h.u.m.Packet(h.u.sel); r == nil || r.Index != 9 {
		t.Errorf("n: selected #%d, want #9", r.Index)
	}
	h.press("<tab>", "<tab>", "<ctrl-f>") // the line holds the last search: replace it
	h.u.input.SetText("62 75 73 79")      // "busy", in #9's bytes
	h.press("<enter>")
	at := bytes.Index(h.u.detail.Raw, []byte("busy"))
	if f := h.u.field; f == nil || f.Start != at || f.End != at+4 {
		t.Errorf("bytes search: highlighted %+v, want %d-%d", f, at, at+4)
	}
	if !strings.Contains(h.text(), "busy|") {
		t.Errorf("the bytes pane does not show busy:\n%s", h.text())
	}
}

// TestExportKey: w, a choice, a file name: the file is written, 0600, with what was chosen.
func TestExportKey(t *testing.T) {
	h := newTestUI(t, fixtureModel(t), nil, 120, 36)
	dir := t.TempDir()
	path := filepath.Join(dir, "all.jsonl")
	// The choices: marked/connection/everything to pcapng, then the same to JSON lines.
	h.press("w", "<down>", "<down>", "<down>", "<down>", "<down>", "<enter>")
	h.u.input.SetText(path)
	h.press("<enter>")
	if !strings.Contains(h.status(), "16 packets written to "+path) {
		t.Fatalf("status %q", h.status())
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v, mode %v", err, fi.Mode())
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), `"kind":"packet"`); n != 16 {
		t.Errorf("%d packet lines, want 16", n)
	}
	// An existing file is not overwritten.
	h.press("w", "<enter>")
	h.u.input.SetText(path)
	h.press("<enter>")
	if !strings.Contains(h.status(), "file exists") {
		t.Errorf("overwriting: status %q", h.status())
	}
}

// TestEditWarns: a field edit that breaks a negotiated limit is sent with a warning.
func TestEditWarns(t *testing.T) {
	raw, _ := decode.Encode(nil, &decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: "a/b", Payload: []byte("hi")})
	act := &fakeActions{held: []Held{{ID: 1, Conn: 1, Dir: stream.C2S, Raw: raw}}}
	h := newTestUI(t, fixtureModel(t), act, 120, 36)
	h.press("5", "e", "<tab>", "<tab>", "<tab>")
	h.press(strings.Repeat("x", 250), "<tab>", "<enter>") // "hi" and 250 x: 261 bytes
	if len(act.calls) != 1 || !strings.Contains(h.status(), "warning: 261 bytes is over the Maximum Packet Size 200") {
		t.Errorf("calls %v, status %q", act.calls, h.status())
	}
}
