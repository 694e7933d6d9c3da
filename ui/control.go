package ui

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
)

// capture is the UI's first look at every key: the key-binding table's actions, unless an
// input line or a dialog has the keys.
func (u *UI) capture(ev *tcell.EventKey) *tcell.EventKey {
	if u.inputFor != "" {
		return ev
	}
	if front, _ := u.root.GetFrontPage(); front != "main" {
		if ev.Key() == tcell.KeyEsc || front == "help" && (keyName(ev) == "q" || keyName(ev) == "?") {
			u.closeDialog()
			return nil
		}
		return ev
	}
	ctx := u.screen
	b, ok := binding(keyName(ev), ctx)
	if !ok || b.Action == "jump" {
		return ev
	}
	if b.Live && !u.act.Live() {
		u.msg = b.Help + ": " + u.act.Why()
		u.refresh()
		return nil
	}
	u.msg = ""
	u.do(b.Action)
	u.refresh() // the ticker redraws only when records come
	return nil
}

// do runs the action of a binding.
func (u *UI) do(action string) {
	switch action {
	case "help":
		tv := tview.NewTextView().SetText(HelpText())
		tv.SetBorder(true).SetTitle(" help (esc, q or ? closes; arrows scroll) ")
		u.root.AddPage("help", tv, true, true)
		u.host.SetFocus(tv)
	case "quit":
		u.quit()
	case "screen-conns", "screen-packets", "screen-session", "screen-topics", "screen-held":
		u.showScreen(strings.TrimPrefix(action, "screen-"))
	case "focus-next":
		if u.screen == "packets" {
			f := u.host.GetFocus()
			for i, p := range u.panes {
				if p == f {
					u.host.SetFocus(u.panes[(i+1)%len(u.panes)])
					return
				}
			}
			u.host.SetFocus(u.list)
		}
	case "filter":
		_, f := u.m.ViewConn()
		text := ""
		if f != nil {
			text = f.String()
		}
		u.ask("filter", "filter: ", text, u.applyFilter)
	case "search":
		u.ask("search", "search: ", u.search, func(s string) {
			u.search = s
			u.next(true)
		})
	case "next", "prev":
		u.next(action == "next")
	case "conn-toggle":
		conn, f := u.m.ViewConn()
		if conn != 0 {
			u.m.SetView(0, f)
		} else {
			u.m.SetView(u.selConn(), f)
		}
		u.reselect()
	case "mark":
		if u.sel >= 0 {
			u.m.Mark(u.sel)
			u.content.cacheRow = -1
		}
	case "next-mark":
		row, _ := u.list.GetSelection()
		if i := u.m.Next(row-1, true, func(s int, _ *inspect.PacketRecord) bool { return u.m.marks[s] }); i >= 0 {
			u.list.Select(i+1, 0)
		} else {
			u.msg = "no packet is marked (m marks one)"
		}
	case "follow":
		u.follow = !u.follow
	case "end":
		u.follow, u.paused = true, false
		u.host.SetFocus(u.list)
	case "top":
		u.follow = false
		u.list.Select(1, 0)
		u.list.ScrollToBeginning()
	case "pause":
		u.paused = !u.paused
		u.pauseLen = u.m.Len()
	case "diff":
		row, _ := u.topics.GetSelection()
		u.showTopic(row, true)
	case "export":
		u.exportDialog()
	case "fault":
		u.faultDialog()
	case "disconnect":
		u.disconnectDialog()
	case "reset":
		conn := u.selConn()
		u.confirm(fmt.Sprintf("Reset connection %d (TCP RST to both peers)?", conn), func() {
			u.report(fmt.Sprintf("connection %d reset", conn), u.act.Reset(conn))
		})
	case "intercept":
		u.ask("intercept", "intercept packets matching: ", u.intercept, func(s string) {
			if err := u.act.Intercept(s); err != nil {
				u.report("", err)
				return
			}
			u.intercept, u.intercepting = s, s != ""
			u.msg = "intercepting " + s + " (5 shows what is held)"
		})
	case "intercept-toggle":
		switch {
		case u.intercepting:
			u.report("intercept off (held packets stay held: a/A forward them)", u.act.Intercept(""))
			u.intercepting = false
		case u.intercept == "":
			u.do("intercept")
		default:
			err := u.act.Intercept(u.intercept)
			u.intercepting = err == nil
			u.report("intercepting "+u.intercept, err)
		}
	case "forward", "drop", "edit", "edit-hex":
		h, ok := u.selHeld()
		if !ok {
			u.msg = "no held packet selected"
			return
		}
		switch action {
		case "forward":
			u.report(fmt.Sprintf("held packet %d forwarded", h.ID), u.act.Forward(h.ID))
		case "drop":
			u.report(fmt.Sprintf("held packet %d dropped", h.ID), u.act.Drop(h.ID))
		case "edit":
			u.editDialog(h)
		case "edit-hex":
			u.ask("edit-hex", "bytes (hex): ", fmt.Sprintf("% x", h.Raw), func(s string) {
				b, ok := parseHex(s)
				if !ok {
					u.msg = "not hex: give bytes as pairs of hex digits (spaces allowed)"
					return
				}
				u.report(fmt.Sprintf("held packet %d edited (%d bytes)", h.ID, len(b)), u.act.Edit(h.ID, b))
			})
		}
	case "forward-all":
		u.report("every held packet forwarded", u.act.ForwardAll())
	}
}

// report says what an action did, or its error.
func (u *UI) report(done string, err error) {
	if err != nil {
		u.msg = "error: " + err.Error()
		return
	}
	u.msg = done
}

func (u *UI) quit() {
	open := 0
	for _, c := range u.m.Conns() {
		if c.Close == nil && c.TLS == "" {
			open++
		}
	}
	if u.act.Live() && open > 0 {
		u.confirm(fmt.Sprintf("Quit? The proxy will drop %s.", inspect.Plural(open, "open connection")), u.host.Stop)
		return
	}
	u.host.Stop()
}

// reselect puts the selection back on the selected packet after the list changed.
func (u *UI) reselect() {
	if u.sel < 0 {
		return
	}
	row, _ := u.m.Row(u.sel)
	u.list.Select(min(row, max(u.m.Len()-1, 0))+1, 0)
}

func (u *UI) applyFilter(src string) {
	conn, _ := u.m.ViewConn()
	if strings.TrimSpace(src) == "" {
		u.m.SetView(conn, nil)
		u.reselect()
		return
	}
	f, err := inspect.CompileFilter(src)
	if err != nil {
		u.msg = "filter: " + err.Error()
		return
	}
	u.m.SetView(conn, f)
	if u.m.Len() == 0 {
		u.msg = "no packet matches the filter"
	}
	u.reselect()
}

// next goes to the next (or previous) search match in the focused pane, or without a
// search, to the next packet with a finding.
func (u *UI) next(forward bool) {
	term := strings.ToLower(u.search)
	switch f := u.host.GetFocus(); {
	case term != "" && f == u.tree:
		u.nextInTree(term, forward)
	case term != "" && f == u.hex && u.hasDet:
		from := 0
		if u.field != nil {
			from = u.field.Start + 1
		}
		at, n := u.detail.FindBytes(u.search, from)
		if at < 0 {
			at, _ = u.detail.FindBytes(u.search, 0)
		}
		if at < 0 {
			u.msg = "not in this packet's bytes: " + u.search
			return
		}
		u.field = &Node{Start: at, End: at + n}
		u.fillHex()
	default:
		row, _ := u.list.GetSelection()
		match := HasFinding
		what := "packet with a finding"
		if term != "" {
			what = "packet matching " + u.search
			match = func(_ int, r *inspect.PacketRecord) bool {
				c := columnsOf(r, nil) // Next holds the model's lock
				return strings.Contains(strings.ToLower(strings.Join([]string{c.Index, c.Type, c.ID, c.Topic, c.Flags, c.Reason, c.Finding}, " ")), term)
			}
		}
		if i := u.m.Next(row-1, forward, match); i >= 0 {
			u.follow = false
			u.list.Select(i+1, 0)
		} else {
			u.msg = "no " + what
		}
	}
}

func (u *UI) nextInTree(term string, forward bool) {
	var nodes []*tview.TreeNode
	root := u.tree.GetRoot()
	if root == nil {
		return
	}
	root.Walk(func(n, _ *tview.TreeNode) bool { nodes = append(nodes, n); return true })
	cur := 0
	for i, n := range nodes {
		if n == u.tree.GetCurrentNode() {
			cur = i
		}
	}
	step := 1
	if !forward {
		step = -1
	}
	for k := 1; k <= len(nodes); k++ {
		n := nodes[((cur+k*step)%len(nodes)+len(nodes))%len(nodes)]
		if ref, ok := n.GetReference().(*Node); ok && strings.Contains(strings.ToLower(ref.Text), term) {
			u.tree.SetCurrentNode(n)
			u.selectField(n)
			return
		}
	}
	u.msg = "not in the tree: " + u.search
}

// ask opens the input line; on enter, done gets the text.
func (u *UI) ask(what, label, text string, done func(string)) {
	u.inputFor, u.pending = what, done
	if f := u.host.GetFocus(); f != u.input {
		u.before = f
	}
	u.input.SetLabel(label).SetText(text)
	u.bottom.SwitchToPage("input")
	u.host.SetFocus(u.input)
	u.inputChanged(text)
}

// inputChanged checks a filter as it is typed.
func (u *UI) inputChanged(text string) {
	if u.inputFor != "filter" && u.inputFor != "intercept" {
		return
	}
	if strings.TrimSpace(text) == "" {
		u.msg = "empty: every packet"
		return
	}
	if _, err := inspect.CompileFilter(text); err != nil {
		u.msg = "✗ " + err.Error()
		if !u.opts.NoColor {
			u.input.SetLabelColor(tcell.ColorRed)
		}
		return
	}
	u.msg = "✓ valid (enter applies, esc cancels)"
	u.input.SetLabelColor(tcell.ColorDefault)
}

func (u *UI) inputDone(key tcell.Key) {
	text := u.input.GetText()
	done := u.pending
	u.inputFor, u.pending = "", nil
	u.msg = ""
	u.input.SetLabelColor(tcell.ColorDefault)
	u.bottom.SwitchToPage("footer")
	back := u.before
	if back == nil {
		back = u.focusOn(u.screen)
	}
	u.host.SetFocus(back)
	if key == tcell.KeyEnter && done != nil {
		done(text)
	}
	u.refresh()
}

// dialog shows p over the screens, w×h cells, centred.
func (u *UI) dialog(name string, p tview.Primitive, w, h int) {
	grid := tview.NewGrid().SetColumns(0, w, 0).SetRows(0, h, 0).AddItem(p, 1, 1, 1, 1, 0, 0, true)
	u.root.AddPage(name, grid, true, true)
	u.host.SetFocus(p)
}

func (u *UI) closeDialog() {
	if front, _ := u.root.GetFrontPage(); front != "main" {
		u.root.RemovePage(front)
	}
	u.host.SetFocus(u.focusOn(u.screen))
}

func (u *UI) confirm(question string, yes func()) {
	m := tview.NewModal().SetText(question).AddButtons([]string{"Yes", "No"})
	m.SetDoneFunc(func(_ int, label string) {
		u.closeDialog()
		if label == "Yes" {
			yes()
		}
	})
	u.dialog("confirm", m, 60, 7)
}

// choose offers items in a list; picked gets the index chosen.
func (u *UI) choose(title string, items []string, picked func(int)) {
	l := tview.NewList().ShowSecondaryText(false)
	l.SetBorder(true).SetTitle(" " + title + " (enter picks, esc cancels) ")
	l.SetSelectedStyle(tcell.StyleDefault.Reverse(true))
	for i, it := range items {
		l.AddItem(tview.Escape(it), "", 0, func() {
			u.closeDialog()
			picked(i)
		})
	}
	w := len(title) + 34
	for _, it := range items {
		w = max(w, len(it)+4)
	}
	u.dialog("choose", l, min(w, 110), min(len(items)+2, 24))
}

func (u *UI) exportDialog() {
	conn := u.selConn()
	type choice struct {
		scope  Scope
		format string
		label  string
	}
	marked := "the selected packet"
	if n := len(u.m.Marks()); n > 0 {
		marked = fmt.Sprintf("the %d marked packets", n)
	}
	var choices []choice
	for _, f := range []string{FormatPcapng, FormatJSONL} {
		choices = append(choices,
			choice{ScopeMarked, f, marked + " → " + f},
			choice{ScopeConn, f, fmt.Sprintf("connection %d → %s", conn, f)},
			choice{ScopeAll, f, "everything → " + f})
	}
	labels := make([]string, len(choices))
	for i, c := range choices {
		labels[i] = c.label
	}
	u.choose("export", labels, func(i int) {
		c := choices[i]
		dir := u.opts.ExportDir
		if dir == "" {
			dir = "."
		}
		name := filepath.Join(dir, fmt.Sprintf("mqscope-%s.%s", u.now().UTC().Format("20060102-150405"), c.format))
		u.ask("export", "write to: ", name, func(path string) {
			seqs := u.m.ExportSeqs(c.scope, u.sel, conn)
			n, err := u.exportTo(path, c.format, seqs, c.scope != ScopeMarked)
			u.report(fmt.Sprintf("%d packets written to %s", n, path), err)
		})
	})
}

// exportTo writes an export to a new file, 0600: it may hold passwords.
func (u *UI) exportTo(path, format string, seqs []int, whole bool) (int, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := u.m.Export(f, format, seqs, whole, inspect.JSONOptions{ShowSecrets: u.opts.ShowSecrets})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("export to %s: %w", path, err)
	}
	return n, nil
}

// negotiated says the values fault expressions refer to, for the palette.
func (u *UI) negotiated(conn int) string {
	c, ok := u.m.Conn(conn)
	if !ok || c.Session == nil {
		return "nothing negotiated yet: expressions take the standard's defaults"
	}
	l := c.Session.Effective.C2S
	return fmt.Sprintf("granted: max_packet_size=%s receive_maximum=%d topic_alias_maximum=%d maximum_qos=%d retain_available=%t; in flight %d",
		limitText(l.MaximumPacketSize), l.ReceiveMaximum, l.TopicAliasMaximum, l.MaximumQoS, l.RetainAvailable, c.InFlight[0])
}

func (u *UI) faultDialog() {
	specs := u.act.Faults()
	if len(specs) == 0 {
		u.msg = "the proxy offers no faults"
		return
	}
	conn := u.selConn()
	labels := make([]string, len(specs))
	for i, s := range specs {
		labels[i] = fmt.Sprintf("%-11s %s", s.Name, strings.SplitN(s.Help, "\n", 2)[0])
	}
	u.choose(fmt.Sprintf("fault for connection %d", conn), labels, func(i int) {
		rule := specs[i].Rule
		if rule == "" {
			rule = strings.TrimSpace(specs[i].Name + " " + specs[i].Params)
		}
		u.ask("fault", "rule: ", rule, func(r string) {
			u.report(fmt.Sprintf("connection %d: fault %s applied", conn, r), u.act.Fault(conn, r))
		})
		u.msg = u.negotiated(conn)
	})
}

func (u *UI) disconnectDialog() {
	conn := u.selConn()
	var codes []decode.ReasonCode
	var labels []string
	for _, c := range decode.ReasonCodes() {
		// The proxy sends it to the device as its server would: codes only a client sends
		// are left out.
		if c.AllowedIn(decode.DISCONNECT) && c.DisconnectSender() != decode.ByClient {
			codes = append(codes, c)
			labels = append(labels, fmt.Sprintf("0x%02X %s", byte(c), c.Name(decode.DISCONNECT)))
		}
	}
	u.choose(fmt.Sprintf("DISCONNECT connection %d with", conn), labels, func(i int) {
		code := codes[i]
		u.ask("disconnect-text", "reason string (may be empty): ", "", func(text string) {
			u.report(fmt.Sprintf("connection %d: DISCONNECT 0x%02X sent", conn, byte(code)), u.act.Disconnect(conn, code, text))
		})
	})
}

func (u *UI) selHeld() (Held, bool) {
	row, _ := u.held.GetSelection()
	if u.screen != "held" || row < 0 || row >= len(u.heldV) {
		return Held{}, false
	}
	return u.heldV[row], true
}

// editDialog edits a held PUBLISH field by field; it is re-encoded with correct lengths.
// Other packets are edited as hex (E).
func (u *UI) editDialog(h Held) {
	p := decode.Decode(h.Raw, u.versionOf(h.Conn))
	pub, ok := p.(*decode.Publish)
	if !ok || len(p.Info().Problems) > 0 {
		u.msg = "field editing is for well-formed PUBLISH packets; E edits the bytes"
		return
	}
	form := tview.NewForm()
	form.AddInputField("topic", pub.Topic, 50, nil, nil)
	form.AddInputField("qos", fmt.Sprint(pub.QoS), 2, nil, nil)
	form.AddCheckbox("retain", pub.Retain, nil)
	form.AddInputField("payload", string(pub.Payload), 50, nil, nil)
	form.AddButton("Save", func() {
		q := *pub
		q.Topic = form.GetFormItemByLabel("topic").(*tview.InputField).GetText()
		var qos int
		if _, err := fmt.Sscan(form.GetFormItemByLabel("qos").(*tview.InputField).GetText(), &qos); err != nil || qos < 0 || qos > 2 {
			u.msg = "qos: want 0, 1 or 2"
			return
		}
		q.QoS = byte(qos)
		q.Retain = form.GetFormItemByLabel("retain").(*tview.Checkbox).IsChecked()
		q.Payload = []byte(form.GetFormItemByLabel("payload").(*tview.InputField).GetText())
		raw, warn, err := u.reencode(h, &q)
		u.closeDialog()
		if err != nil {
			u.report("", err)
			return
		}
		u.report(fmt.Sprintf("held packet %d edited (%d bytes)%s", h.ID, len(raw), warn), u.act.Edit(h.ID, raw))
	})
	form.AddButton("Cancel", u.closeDialog)
	form.SetBorder(true).SetTitle(fmt.Sprintf(" edit held PUBLISH %d ", h.ID))
	u.dialog("edit", form, 70, 13)
}

func (u *UI) versionOf(conn int) decode.Version {
	if c, ok := u.m.Conn(conn); ok && c.Version != 0 {
		return c.Version
	}
	return decode.V5
}

// reencode encodes an edited packet, warning when it breaks a negotiated limit.
func (u *UI) reencode(h Held, p *decode.Publish) (raw []byte, warn string, err error) {
	p.Base = decode.Base{Version: u.versionOf(h.Conn)}
	raw, err = decode.Encode(nil, p)
	if err != nil {
		return nil, "", fmt.Errorf("edit: %w", err)
	}
	if c, ok := u.m.Conn(h.Conn); ok && c.Session != nil {
		l := c.Session.Effective.Limit(h.Dir)
		switch {
		case l.MaximumPacketSize > 0 && len(raw) > l.MaximumPacketSize:
			warn = fmt.Sprintf("; warning: %d bytes is over the Maximum Packet Size %d", len(raw), l.MaximumPacketSize)
		case int(p.QoS) > l.MaximumQoS:
			warn = fmt.Sprintf("; warning: QoS %d is over the Maximum QoS %d", p.QoS, l.MaximumQoS)
		case p.Retain && !l.RetainAvailable:
			warn = "; warning: RETAIN is set but Retain Available is 0"
		}
	}
	return raw, warn, nil
}
