package ui

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
)

var update = flag.Bool("update", false, "rewrite the golden screens in testdata")

// testHost is the screens' host in tests: focus as tview's Application keeps it, keys
// through the UI's capture then the focused primitive, and drawing on a simulation screen.
type testHost struct {
	t       *testing.T
	u       *UI
	screen  tcell.SimulationScreen
	focus   tview.Primitive
	stopped bool
}

func (h *testHost) SetFocus(p tview.Primitive) {
	if h.focus != nil {
		h.focus.Blur()
	}
	h.focus = p
	if p != nil {
		p.Focus(h.SetFocus)
	}
}

func (h *testHost) GetFocus() tview.Primitive { return h.focus }
func (h *testHost) Stop()                     { h.stopped = true }

// newTestUI shows m on a w×h simulation screen.
func newTestUI(t *testing.T, m *Model, act Actions, w, h int) *testHost {
	t.Helper()
	screen := tcell.NewSimulationScreen("UTF-8")
	if err := screen.Init(); err != nil {
		t.Fatal(err)
	}
	screen.SetSize(w, h)
	u := New(m, act, Options{Source: "fixture.pcapng", NoColor: true, ExportDir: t.TempDir()})
	th := &testHost{t: t, u: u, screen: screen}
	u.host = th
	th.SetFocus(u.list)
	u.refresh()
	th.draw()
	return th
}

func (h *testHost) draw() {
	w, ht := h.screen.Size()
	h.screen.Clear()
	h.u.root.SetRect(0, 0, w, ht)
	h.u.root.Draw(h.screen)
	h.screen.Show()
}

// press types keys: runes, or names in angle brackets (<tab>, <enter>, <esc>, <down>,
// <up>, <ctrl-f>, <backspace>).
func (h *testHost) press(keys ...string) {
	for _, k := range keys {
		if key, ok := namedKeys[k]; ok {
			h.key(tcell.NewEventKey(key, 0, tcell.ModNone))
			continue
		}
		for _, r := range k {
			h.key(tcell.NewEventKey(tcell.KeyRune, r, tcell.ModNone))
		}
	}
}

var namedKeys = map[string]tcell.Key{
	"<tab>": tcell.KeyTab, "<enter>": tcell.KeyEnter, "<esc>": tcell.KeyEsc, "<down>": tcell.KeyDown,
	"<up>": tcell.KeyUp, "<ctrl-f>": tcell.KeyCtrlF, "<backspace>": tcell.KeyBackspace2,
}

func (h *testHost) key(ev *tcell.EventKey) {
	if ev = h.u.capture(ev); ev != nil {
		if handler := h.u.root.InputHandler(); handler != nil {
			handler(ev, h.SetFocus)
		}
	}
	h.u.refresh()
	h.draw()
}

// text returns the screen as lines; under a line with reverse-video cells (the selection,
// highlighted bytes) a line marks them with ^.
func (h *testHost) text() string {
	cells, w, ht := h.screen.GetContents()
	var sb strings.Builder
	for y := range ht {
		var line, marks strings.Builder
		reversed := false
		for x := range w {
			c := cells[y*w+x]
			r := " "
			if len(c.Runes) > 0 {
				r = string(c.Runes)
			}
			line.WriteString(r)
			_, _, attr := c.Style.Decompose()
			if attr&tcell.AttrReverse != 0 {
				marks.WriteByte('^')
				reversed = true
			} else {
				marks.WriteByte(' ')
			}
		}
		sb.WriteString(strings.TrimRight(line.String(), " ") + "\n")
		if reversed {
			sb.WriteString(strings.TrimRight(marks.String(), " ") + "\n")
		}
	}
	return sb.String()
}

// golden compares the screen with testdata/NAME.screen (rewritten with -update).
func (h *testHost) golden(name string) {
	h.t.Helper()
	path := filepath.Join("testdata", name+".screen")
	got := h.text()
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			h.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			h.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		h.t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		h.t.Errorf("screen %s differs from %s (go test -update rewrites it):\n%s", name, path, got)
	}
}

// status is the last line of the screen: what the last action said.
func (h *testHost) status() string {
	lines := strings.Split(strings.TrimRight(h.text(), "\n"), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// TestScreens presses keys and compares whole screens with golden files.
func TestScreens(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys []string
	}{
		{"first", nil},
		// n: the first packet with a finding; its tree and its bytes.
		{"next-finding", []string{"n"}},
		// The tree: down to the topic alias property, whose bytes light up.
		{"tree-field", []string{"n", "<tab>", "<down>", "<down>", "<down>", "<down>", "<down>", "<down>", "<down>"}},
		// The DISCONNECT's cause link, followed with enter, selects the PUBLISH.
		{"jump-cause", []string{"n", "n", "<tab>", "<down>", "<down>", "<down>", "<down>", "<down>", "<down>", "<enter>"}},
		// A filter with an error, as typed, then a valid one applied.
		{"filter-typing", []string{"/", "type =="}},
		{"filter-applied", []string{"/", `type == "PUBLISH" && qos > 0`, "<enter>"}},
		{"conn-only", []string{"G", "c"}},
		{"help", []string{"?"}},
		{"connections", []string{"1"}},
		{"session", []string{"n", "3"}},
		{"topics-diff", []string{"4", "<down>", "<down>", "<down>", "<down>", "<down>", "<down>", "d"}},
		{"marks", []string{"<down>", "m", "<down>", "<down>", "m", "g", "'"}},
		{"search-tree", []string{"<down>", "<down>", "<down>", "<down>", "<down>", "<down>", "<tab>", "<ctrl-f>", "fw", "<enter>"}},
		{"refused", []string{"!"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestUI(t, fixtureModel(t), nil, 120, 36)
			h.press(tc.keys...)
			h.golden(tc.name)
		})
	}
}

// TestFollow: with F the selection stays on the newest packet as packets arrive; moving up
// stops following; p freezes the list while records are still kept.
func TestFollow(t *testing.T) {
	recs := fixture(t)
	m := NewModel(0)
	for _, r := range recs[:5] {
		m.Add(r)
	}
	h := newTestUI(t, m, nil, 120, 36)
	h.press("F")
	for _, r := range recs[5:] {
		m.Add(r)
	}
	h.u.refresh()
	h.draw()
	if row, _ := h.u.list.GetSelection(); row != m.Len() {
		t.Errorf("following: row %d selected, want the last (%d)", row, m.Len())
	}
	h.press("<up>")
	if h.u.follow {
		t.Error("still following after moving up")
	}
	h.press("p")
	n := h.u.listLen()
	m.Add(recs[len(recs)-1]) // any record: the list must not grow while paused
	h.u.refresh()
	h.draw()
	if h.u.listLen() != n || !strings.Contains(h.text(), "paused (1 new)") {
		t.Errorf("paused: %d rows (was %d); header:\n%s", h.u.listLen(), n, strings.SplitN(h.text(), "\n", 2)[0])
	}
}

// TestRefreshTime: the keep-alive countdown of a live source runs on its clock.
func TestLiveClock(t *testing.T) {
	m := fixtureModel(t)
	c, _ := m.Conn(2)
	now := c.LastSeen[0].Add(10 * time.Second)
	h := newTestUI(t, m, nil, 120, 36)
	h.u.opts.Live, h.u.opts.Now = true, func() time.Time { return now }
	h.press("G", "3")
	if !strings.Contains(h.text(), "35s left before the server may close") {
		t.Errorf("live keep alive:\n%s", h.text())
	}
}

// TestTablesFollowModel: the connections and topics tables are filled again when records came
// while another screen was shown, and not on a refresh with nothing new.
func TestTablesFollowModel(t *testing.T) {
	recs := fixture(t)
	half := len(recs) / 2
	m := NewModel(0)
	for _, r := range recs[:half] {
		m.Add(r)
	}
	h := newTestUI(t, m, nil, 120, 36)
	h.press("1")
	connsBefore := h.u.conns.GetRowCount()
	h.press("4")
	topicsBefore := h.u.topics.GetRowCount()
	h.press("2")
	for _, r := range recs[half:] {
		m.Add(r)
	}
	h.u.refresh()
	h.press("1")
	full := fixtureModel(t)
	if got, want := h.u.conns.GetRowCount(), len(full.Conns())+1; got != want || got == connsBefore {
		t.Errorf("connections: %d rows after the records that came on the packets screen, want %d (had %d)", got, want, connsBefore)
	}
	h.press("4")
	if got, want := h.u.topics.GetRowCount(), len(full.Topics()); got != want || got == topicsBefore {
		t.Errorf("topics: %d rows, want %d (had %d)", got, want, topicsBefore)
	}
	// Nothing new: the table is not filled again (a cell changed by hand stays).
	h.u.topics.GetCell(0, 0).SetText("marker")
	h.u.refresh()
	if h.u.topics.GetCell(0, 0).Text != "marker" {
		t.Error("the topics table was filled again with nothing new")
	}
}
