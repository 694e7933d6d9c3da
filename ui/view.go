package ui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
)

// Options configure the screens.
type Options struct {
	// Source names what is shown, for the header ("capture.pcapng", "proxy :1883 → broker").
	Source string
	// Live is set for a live source (the proxy, a live capture): the keep-alive countdown
	// runs on the clock, and quitting drops connections when Actions are live.
	Live bool
	// NoColor shows everything in the terminal's own colours, with attributes only
	// (NO_COLOR).
	NoColor     bool
	ShowSecrets bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// ExportDir is where exports are written unless the user gives a path ("." when "").
	ExportDir string
	// AfterDraw, when set, is called on the UI's goroutine after each screen is drawn
	// (benchmarks).
	AfterDraw func(u *UI)
}

// host is what the screens need of tview's Application (a fake in the view tests).
type host interface {
	SetFocus(p tview.Primitive)
	GetFocus() tview.Primitive
	Stop()
}

// UI is the screens over a Model.
type UI struct {
	m    *Model
	act  Actions
	opts Options
	host host

	root    *tview.Pages
	header  *tview.TextView
	footer  *tview.TextView
	input   *tview.InputField
	bottom  *tview.Pages // footer or input
	status  *tview.TextView
	screens *tview.Pages

	list    *tview.Table
	content *listContent
	tree    *tview.TreeView
	hex     *tview.TextView
	panes   []tview.Primitive
	conns   *tview.Table
	connIDs []int
	session *tview.TextView
	topics  *tview.Table
	topicV  *tview.TextView
	topicLs []TopicLine
	held    *tview.Table
	heldV   []Held

	screen   string
	inputFor string // "filter", "search", "intercept", "fault", "disconnect-text", "export"

	sel      int // Seq of the selected packet (-1: none)
	detail   Detail
	hasDet   bool
	field    *Node // the tree node selected
	follow   bool
	paused   bool
	pauseLen int
	search   string
	msg      string
	// The model's generation each table was filled at, to fill it again only when the model
	// changed (while another screen was shown too).
	connsGen, topicsGen       uint64
	connsFilled, topicsFilled bool
	quitting                  bool
	intercept                 string
	intercepting              bool
	pending                   func(string)    // what the input line does on enter
	before                    tview.Primitive // what had the keys before the input line
}

// New builds the screens over m; act may be nil (NoActions).
func New(m *Model, act Actions, opts Options) *UI {
	if act == nil {
		act = NoActions{Reason: WhyFile}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	defaultColors() // with NoColor too: the screens then add no colour of their own
	u := &UI{m: m, act: act, opts: opts, sel: -1, screen: "packets"}
	u.build()
	return u
}

// defaultColors keep the terminal's background and foreground, so that light and dark
// terminals both read well; selection is reverse video.
func defaultColors() {
	s := &tview.Styles
	s.PrimitiveBackgroundColor = tcell.ColorDefault
	s.ContrastBackgroundColor = tcell.ColorDefault
	s.MoreContrastBackgroundColor = tcell.ColorDefault
	s.BorderColor = tcell.ColorDefault
	s.TitleColor = tcell.ColorDefault
	s.GraphicsColor = tcell.ColorDefault
	s.PrimaryTextColor = tcell.ColorDefault
	s.SecondaryTextColor = tcell.ColorDefault
	s.TertiaryTextColor = tcell.ColorDefault
	s.InverseTextColor = tcell.ColorDefault
	s.ContrastSecondaryTextColor = tcell.ColorDefault
}

func (u *UI) build() {
	u.header = tview.NewTextView().SetDynamicColors(true)
	u.footer = tview.NewTextView().SetDynamicColors(true)
	u.status = tview.NewTextView().SetDynamicColors(true)
	u.input = tview.NewInputField()
	u.input.SetFieldBackgroundColor(tcell.ColorDefault)
	u.input.SetFieldStyle(tcell.StyleDefault.Underline(true))
	u.input.SetChangedFunc(u.inputChanged)
	u.input.SetDoneFunc(u.inputDone)
	u.bottom = tview.NewPages().AddPage("footer", u.footer, true, true).AddPage("input", u.input, true, false)

	u.content = &listContent{u: u, cacheRow: -1}
	u.list = tview.NewTable().SetContent(u.content).SetFixed(1, 0).SetSelectable(true, false)
	u.list.SetSelectedStyle(tcell.StyleDefault.Reverse(true))
	u.list.SetSelectionChangedFunc(func(row, _ int) { u.selectRow(row - 1) })
	u.list.SetBorder(true).SetTitle(" packets ")

	u.tree = tview.NewTreeView()
	u.tree.SetBorder(true).SetTitle(" detail ")
	u.tree.SetChangedFunc(func(n *tview.TreeNode) { u.selectField(n) })
	u.tree.SetSelectedFunc(func(n *tview.TreeNode) { u.jump(n) })

	u.hex = tview.NewTextView().SetDynamicColors(true).SetWrap(false)
	u.hex.SetBorder(true).SetTitle(" bytes ")

	// Three linked panes, one above the other (termshark's layout): the tree gets the whole
	// width for MQTT 5's long property names and values.
	packets := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(u.list, 0, 5, true).AddItem(u.tree, 0, 5, false).AddItem(u.hex, 0, 3, false)
	u.panes = []tview.Primitive{u.list, u.tree, u.hex}

	u.conns = tview.NewTable().SetFixed(1, 0).SetSelectable(true, false)
	u.conns.SetSelectedStyle(tcell.StyleDefault.Reverse(true))
	u.conns.SetBorder(true).SetTitle(" connections (enter: its packets) ")
	u.conns.SetSelectedFunc(func(row, _ int) {
		if row >= 1 && row-1 < len(u.connIDs) {
			_, f := u.m.ViewConn()
			u.m.SetView(u.connIDs[row-1], f)
			u.showScreen("packets")
		}
	})

	u.session = tview.NewTextView().SetWrap(false)
	u.session.SetBorder(true).SetTitle(" session ")

	u.topics = tview.NewTable().SetSelectable(true, false)
	u.topics.SetSelectedStyle(tcell.StyleDefault.Reverse(true))
	u.topics.SetBorder(true).SetTitle(" topics ")
	u.topics.SetSelectionChangedFunc(func(row, _ int) { u.showTopic(row, false) })
	u.topicV = tview.NewTextView().SetDynamicColors(true).SetWrap(false)
	u.topicV.SetBorder(true).SetTitle(" last payload (d: diff with the previous) ")
	topics := tview.NewFlex().AddItem(u.topics, 0, 1, true).AddItem(u.topicV, 0, 1, false)

	u.held = tview.NewTable().SetSelectable(true, false)
	u.held.SetSelectedStyle(tcell.StyleDefault.Reverse(true))
	u.held.SetBorder(true).SetTitle(" held by intercept ")

	u.screens = tview.NewPages().
		AddPage("packets", packets, true, true).
		AddPage("conns", u.conns, true, false).
		AddPage("session", u.session, true, false).
		AddPage("topics", topics, true, false).
		AddPage("held", u.held, true, false)

	main := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(u.header, 1, 0, false).
		AddItem(u.screens, 0, 1, true).
		AddItem(u.bottom, 1, 0, false).
		AddItem(u.status, 1, 0, false)
	u.root = tview.NewPages().AddPage("main", main, true, true)
}

// Selection returns the row of the packet list selected (from 0; -1 when none) and how many
// rows the list has.
func (u *UI) Selection() (row, rows int) {
	r, _ := u.list.GetSelection()
	return r - 1, u.listLen()
}

// Root returns the primitive to run.
func (u *UI) Root() tview.Primitive { return u.root }

// focusOn is the primitive that has the keys on a screen.
func (u *UI) focusOn(screen string) tview.Primitive {
	switch screen {
	case "conns":
		return u.conns
	case "session":
		return u.session
	case "topics":
		return u.topics
	case "held":
		return u.held
	}
	return u.list
}

func (u *UI) showScreen(name string) {
	u.screen = name
	u.screens.SwitchToPage(name)
	u.host.SetFocus(u.focusOn(name))
	u.refresh()
}

// listLen is how many rows the packet list shows (frozen while paused).
func (u *UI) listLen() int {
	if u.paused {
		return u.pauseLen
	}
	return u.m.Len()
}

// refresh brings every screen up to date with the model.
func (u *UI) refresh() {
	gen := u.m.Gen()
	n := u.listLen()
	if u.follow && !u.paused && n > 0 {
		if row, _ := u.list.GetSelection(); row != n {
			u.list.Select(n, 0)
		}
	}
	if u.sel < 0 && n > 0 {
		u.list.Select(1, 0)
	}
	if !u.follow {
		// tview's table keeps to its end once it was shorter than the screen: packets
		// arriving would scroll the selection away.
		u.list.SetOffset(u.list.GetOffset())
	}
	u.header.SetText(u.headerText(n))
	u.footer.SetText(tview.Escape(FooterText() + "  1-5 screens"))
	u.status.SetText(tview.Escape(u.msg))
	switch u.screen {
	case "conns":
		// Filled again only when the model changed since: a refresh comes several times a
		// second, and a capture may hold thousands of connections.
		if !u.connsFilled || gen != u.connsGen {
			u.fillConns()
			u.connsFilled, u.connsGen = true, gen
		}
	case "session":
		u.session.SetText(u.m.SessionText(u.selConn(), u.now()))
	case "topics":
		if !u.topicsFilled || gen != u.topicsGen {
			u.fillTopics()
			u.topicsFilled, u.topicsGen = true, gen
		}
	case "held":
		u.fillHeld()
	}
}

func (u *UI) now() time.Time {
	if u.opts.Live {
		return u.opts.Now()
	}
	return u.m.Now()
}

func (u *UI) headerText(n int) string {
	var parts []string
	parts = append(parts, "mqscope "+tview.Escape(u.opts.Source))
	if st := u.m.Status(); st != "" {
		parts = append(parts, tview.Escape(st))
	}
	conn, f := u.m.ViewConn()
	total := u.m.Total()
	shown := fmt.Sprintf("%d packets", total)
	if conn != 0 || f != nil {
		shown = fmt.Sprintf("%d of %d packets", n, total)
	}
	if conn != 0 {
		shown += fmt.Sprintf(" (connection %d)", conn)
	}
	parts = append(parts, shown)
	if d := u.m.Dropped(); d > 0 {
		parts = append(parts, fmt.Sprintf("%d oldest dropped (cap %d)", d, u.m.cap))
	}
	if l := u.m.LostText(); l != "" {
		parts = append(parts, l)
	}
	if f != nil {
		parts = append(parts, "filter: "+tview.Escape(f.String()))
	}
	if u.follow {
		parts = append(parts, "following")
	}
	if u.paused {
		parts = append(parts, fmt.Sprintf("paused (%d new)", u.m.Len()-u.pauseLen))
	}
	if u.intercepting {
		parts = append(parts, "intercepting: "+tview.Escape(u.intercept))
	}
	if n := len(u.act.Held()); n > 0 {
		parts = append(parts, fmt.Sprintf("%d held (5 shows them)", n))
	}
	if marks := len(u.m.Marks()); marks > 0 {
		parts = append(parts, fmt.Sprintf("%d marked", marks))
	}
	return strings.Join(parts, " │ ")
}

// selConn is the connection of the selected packet, else the one the list shows, else the
// first.
func (u *UI) selConn() int {
	if r := u.m.Packet(u.sel); r != nil {
		return r.Conn
	}
	if c, _ := u.m.ViewConn(); c != 0 {
		return c
	}
	if cs := u.m.Conns(); len(cs) > 0 {
		return cs[0].ID
	}
	return 0
}

// selectRow shows the packet of list row i.
func (u *UI) selectRow(i int) {
	seq := u.m.At(i)
	if seq < 0 || seq == u.sel && u.hasDet {
		return
	}
	if n := u.listLen(); u.follow && i < n-1 {
		u.follow = false // moving up stops following
	}
	u.sel = seq
	d, ok := u.m.Detail(seq, DetailOptions{ShowSecrets: u.opts.ShowSecrets})
	u.detail, u.hasDet = d, ok
	u.field = nil
	u.fillTree()
	u.fillHex()
}

func (u *UI) fillTree() {
	if !u.hasDet {
		u.tree.SetRoot(nil)
		return
	}
	var add func(n *Node) *tview.TreeNode
	add = func(n *Node) *tview.TreeNode {
		text := tview.Escape(n.Text)
		if n.Jump != nil {
			text = "[::u]" + text + "[::-]"
		}
		style := tcell.StyleDefault
		if n.Finding && !u.opts.NoColor {
			style = style.Foreground(tcell.ColorOlive)
			if n.Level == decode.LevelError {
				style = style.Foreground(tcell.ColorMaroon)
			}
		}
		tn := tview.NewTreeNode(text).SetReference(n).SetSelectable(true).
			SetTextStyle(style).SetSelectedTextStyle(style.Reverse(true))
		for _, c := range n.Children {
			tn.AddChild(add(c))
		}
		if strings.HasPrefix(n.Text, "payload as") {
			tn.SetExpanded(len(n.Children) <= 8)
		}
		return tn
	}
	root := add(u.detail.Root)
	u.tree.SetRoot(root).SetCurrentNode(root)
}

func (u *UI) selectField(tn *tview.TreeNode) {
	if n, ok := tn.GetReference().(*Node); ok {
		u.field = n
		u.fillHex()
	}
}

func (u *UI) fillHex() {
	if !u.hasDet {
		u.hex.SetText("")
		return
	}
	s0, s1 := 0, 0
	if f := u.field; f != nil && f != u.detail.Root {
		s0, s1 = f.Start, f.End
	}
	var sb strings.Builder
	first := -1
	for i, l := range u.detail.HexLines(s0, s1, u.opts.ShowSecrets) {
		if first < 0 && s1 > s0 && l.Offset+16 > s0 {
			first = i
		}
		sb.WriteString(l.Text("[::r]", "[::-]", tview.Escape))
		sb.WriteByte('\n')
	}
	u.hex.SetText(sb.String())
	if first >= 0 {
		u.hex.ScrollTo(max(first-2, 0), 0)
	} else {
		u.hex.ScrollToBeginning()
	}
}

// jump follows the link of tree node tn (enter, or a click).
func (u *UI) jump(tn *tview.TreeNode) {
	n, ok := tn.GetReference().(*Node)
	if !ok || n.Jump == nil {
		return // a field: selecting it (keys, a click) is all
	}
	seq, ok := u.m.Find(n.Jump.Conn, n.Jump.Index)
	if !ok {
		u.msg = fmt.Sprintf("packet #%d of connection %d is not held (dropped, or filtered out of the source)", n.Jump.Index, n.Jump.Conn)
		return
	}
	u.goTo(seq)
}

// goTo selects packet seq in the list, showing all packets of its connection when the list
// hides it.
func (u *UI) goTo(seq int) {
	row, ok := u.m.Row(seq)
	if !ok {
		u.m.SetView(0, nil)
		u.msg = "filter cleared to show the packet"
		row, _ = u.m.Row(seq)
	}
	u.follow = false
	u.list.Select(row+1, 0)
	u.host.SetFocus(u.list)
}

func (u *UI) fillConns() {
	t := u.conns
	t.Clear()
	for i, h := range []string{"conn", "client id", "client", "server", "MQTT", "state", "packets", "bytes", "errors", "warnings"} {
		t.SetCell(0, i, tview.NewTableCell(h).SetSelectable(false).SetAttributes(tcell.AttrBold))
	}
	u.connIDs = u.connIDs[:0]
	for i, c := range u.m.Conns() {
		u.connIDs = append(u.connIDs, c.ID)
		state := c.State()
		if c.TLS != "" {
			state = c.TLS
		}
		for j, v := range []string{strconv.Itoa(c.ID), c.ClientID, c.Client, c.Server, c.Version.String(), state,
			strconv.Itoa(c.Packets), strconv.FormatInt(c.Bytes, 10), strconv.Itoa(c.Findings[decode.LevelError]), strconv.Itoa(c.Findings[decode.LevelWarning])} {
			t.SetCell(i+1, j, tview.NewTableCell(tview.Escape(v)))
		}
	}
}

func (u *UI) fillTopics() {
	u.topicLs = u.m.Topics()
	t := u.topics
	row, _ := t.GetSelection()
	t.Clear()
	for i, l := range u.topicLs {
		name := strings.Repeat("  ", l.Depth) + l.Name
		t.SetCell(i, 0, tview.NewTableCell(tview.Escape(name)).SetExpansion(1))
		count := strconv.Itoa(l.Total)
		if l.Count != l.Total {
			count = fmt.Sprintf("%d (%d here)", l.Total, l.Count)
		}
		t.SetCell(i, 1, tview.NewTableCell(count).SetAlign(tview.AlignRight))
	}
	if len(u.topicLs) > 0 {
		t.Select(min(row, len(u.topicLs)-1), 0)
		u.showTopic(min(row, len(u.topicLs)-1), false)
	}
}

// showTopic shows the last payload of topic row i, or its diff with the previous one.
func (u *UI) showTopic(i int, diff bool) {
	if i < 0 || i >= len(u.topicLs) {
		return
	}
	l := u.topicLs[i]
	var sb strings.Builder
	if l.Last == nil {
		fmt.Fprintf(&sb, "%s: %s below", tview.Escape(l.Path), inspect.Plural(l.Total, "message"))
		u.topicV.SetText(sb.String())
		return
	}
	fmt.Fprintf(&sb, "%s\n%s; the last: #%d of connection %d at %s\n\n", tview.Escape(l.Path), inspect.Plural(l.Count, "message"), l.Last.Index, l.Last.Conn, l.Last.Time.UTC().Format("15:04:05.000"))
	if !diff {
		u.topicV.SetTitle(" last payload (d: diff with the previous) ")
		sb.WriteString(tview.Escape(PayloadText(l.Last)))
		u.topicV.SetText(sb.String())
		return
	}
	u.topicV.SetTitle(" diff: previous → last ")
	if l.Prev == nil {
		sb.WriteString("only one message on this topic: nothing to compare")
	}
	if l.Prev != nil {
		for _, d := range Diff(PayloadText(l.Prev), PayloadText(l.Last)) {
			line := string(d.Op) + " " + tview.Escape(d.Text)
			switch {
			case u.opts.NoColor:
			case d.Op == '-':
				line = "[red]" + line + "[-]"
			case d.Op == '+':
				line = "[green]" + line + "[-]"
			}
			sb.WriteString(line + "\n")
		}
	}
	u.topicV.SetText(sb.String())
}

func (u *UI) fillHeld() {
	u.heldV = u.act.Held()
	t := u.held
	t.Clear()
	if len(u.heldV) == 0 {
		why := "nothing held"
		if !u.act.Live() {
			why = u.act.Why()
		}
		t.SetCell(0, 0, tview.NewTableCell(tview.Escape(why)).SetSelectable(false))
		return
	}
	for i, h := range u.heldV {
		p := decode.Decode(h.Raw, 0)
		edited := ""
		if h.Edited {
			edited = "edited"
		}
		for j, v := range []string{strconv.FormatUint(h.ID, 10), strconv.Itoa(h.Conn), h.Dir.Arrow(), p.Type().String(), strconv.Itoa(len(h.Raw)), edited} {
			t.SetCell(i, j, tview.NewTableCell(v))
		}
	}
}

// listContent is the packet list, virtual: rows are made when drawn, so a million packets
// cost no more than a screenful.
type listContent struct {
	tview.TableContentReadOnly
	u        *UI
	cacheRow int
	cacheSeq int
	cache    Columns
}

var listHeader = []string{"conn", "#", "time", "Δt", "", "type", "id", "topic", "flags", "size", "reason", "!"}

func (c *listContent) GetRowCount() int    { return c.u.listLen() + 1 }
func (c *listContent) GetColumnCount() int { return len(listHeader) }

func (c *listContent) GetCell(row, col int) *tview.TableCell {
	if row == 0 {
		return tview.NewTableCell(listHeader[col]).SetSelectable(false).SetAttributes(tcell.AttrBold)
	}
	i := row - 1
	seq := c.u.m.At(i)
	if seq < 0 {
		return nil
	}
	if c.cacheRow != row || c.cacheSeq != seq {
		r := c.u.m.Packet(seq)
		if r == nil {
			return nil
		}
		var prev *inspect.PacketRecord
		if i > 0 {
			prev = c.u.m.Packet(c.u.m.At(i - 1))
		}
		c.cache, c.cacheRow, c.cacheSeq = c.u.m.Columns(r, prev), row, seq
	}
	v := c.cache
	text := []string{v.Conn, v.Index, v.Time, v.Delta, v.Dir, v.Type, v.ID, v.Topic, v.Flags, v.Size, v.Reason, v.Finding}[col]
	if col == 1 && c.u.m.Marked(seq) {
		text = "*" + text
	}
	cell := tview.NewTableCell(tview.Escape(text))
	switch col {
	case 0, 1, 9:
		cell.SetAlign(tview.AlignRight)
	case 7:
		cell.SetMaxWidth(48).SetExpansion(1)
	case 11:
		if !c.u.opts.NoColor && v.Finding == "error" {
			cell.SetTextColor(tcell.ColorRed)
		} else if !c.u.opts.NoColor && v.Finding == "warning" {
			cell.SetTextColor(tcell.ColorYellow)
		}
	}
	return cell
}
