package ui

import (
	"fmt"
	"strings"

	"github.com/gdamore/tcell/v2"
)

// Binding is one key of the key-binding table: the help screen (?) and the footer are made
// from the table, and the screens dispatch keys through it.
type Binding struct {
	Key     string // as typed: "q", "G", "ctrl-f", "enter", "tab", "esc"
	Context string // where it works: "" (everywhere), "packets", "topics", "held"
	Action  string // the action's name (UI.actions)
	Help    string
	Footer  bool // shown in the footer
	Live    bool // acts on a live connection: refused, with why, on files and --readonly
}

// Bindings is mqscope's key-binding table.
var Bindings = []Binding{
	{Key: "?", Action: "help", Help: "this help", Footer: true},
	{Key: "q", Action: "quit", Help: "quit (asks first when a live proxy would drop connections)", Footer: true},
	{Key: "1", Action: "screen-conns", Help: "connections"},
	{Key: "2", Action: "screen-packets", Help: "packets: list, detail tree and bytes"},
	{Key: "3", Action: "screen-session", Help: "session of the selected connection: limits, aliases, in flight, keep alive"},
	{Key: "4", Action: "screen-topics", Help: "topic tree with counts and last payload"},
	{Key: "5", Action: "screen-held", Help: "packets held by intercept"},
	{Key: "tab", Action: "focus-next", Help: "next pane (list, tree, bytes)"},
	{Key: "/", Action: "filter", Help: "filter packets (the --filter language, checked as you type)", Footer: true},
	{Key: "ctrl-f", Action: "search", Help: "search in the focused list, tree or bytes", Footer: true},
	{Key: "n", Action: "next", Help: "next search match, or next packet with a finding", Footer: true},
	{Key: "N", Action: "prev", Help: "previous search match, or previous packet with a finding"},
	{Key: "c", Context: "packets", Action: "conn-toggle", Help: "packets of the selected packet's connection, or of all"},
	{Key: "m", Context: "packets", Action: "mark", Help: "mark or unmark the selected packet"},
	{Key: "'", Context: "packets", Action: "next-mark", Help: "next marked packet"},
	{Key: "F", Context: "packets", Action: "follow", Help: "follow new packets (on/off)", Footer: true},
	{Key: "G", Context: "packets", Action: "end", Help: "jump to the last packet and follow"},
	{Key: "g", Context: "packets", Action: "top", Help: "jump to the first packet"},
	{Key: "p", Context: "packets", Action: "pause", Help: "pause or resume the list (records are still kept)"},
	{Key: "enter", Context: "packets", Action: "jump", Help: "in the tree: follow a link (answers, caused by, request)"},
	{Key: "d", Context: "topics", Action: "diff", Help: "diff the topic's last payload with the previous one"},
	{Key: "w", Action: "export", Help: "export marked packets, the connection or everything to pcapng or JSON lines", Footer: true},
	{Key: "!", Action: "fault", Help: "fault palette for the selected connection", Footer: true, Live: true},
	{Key: "X", Action: "disconnect", Help: "send DISCONNECT with a reason code to both peers", Live: true},
	{Key: "R", Action: "reset", Help: "reset the selected connection (TCP RST)", Live: true},
	{Key: "i", Action: "intercept", Help: "intercept: hold packets matching a filter", Live: true},
	{Key: "I", Action: "intercept-toggle", Help: "intercept on/off", Live: true},
	{Key: "a", Context: "held", Action: "forward", Help: "forward the selected held packet", Live: true},
	{Key: "A", Context: "held", Action: "forward-all", Help: "forward every held packet", Live: true},
	{Key: "D", Context: "held", Action: "drop", Help: "drop the selected held packet", Live: true},
	{Key: "e", Context: "held", Action: "edit", Help: "edit the held packet's fields (re-encoded)", Live: true},
	{Key: "E", Context: "held", Action: "edit-hex", Help: "edit the held packet as hex", Live: true},
}

// keyName is how a key event is written in the table.
func keyName(ev *tcell.EventKey) string {
	switch ev.Key() {
	case tcell.KeyRune:
		return string(ev.Rune())
	case tcell.KeyTab:
		return "tab"
	case tcell.KeyEnter:
		return "enter"
	case tcell.KeyEsc:
		return "esc"
	}
	if ev.Key() >= tcell.KeyCtrlA && ev.Key() <= tcell.KeyCtrlZ {
		return "ctrl-" + string(rune('a'+ev.Key()-tcell.KeyCtrlA))
	}
	return ""
}

// binding finds the binding of key in context (a context's own before the global ones).
func binding(key, context string) (Binding, bool) {
	for _, b := range Bindings {
		if b.Key == key && b.Context == context {
			return b, true
		}
	}
	for _, b := range Bindings {
		if b.Key == key && b.Context == "" {
			return b, true
		}
	}
	return Binding{}, false
}

// HelpText is the help screen, made from the table.
func HelpText() string {
	var sb strings.Builder
	sb.WriteString("mqscope keys (esc closes)\n\n")
	for _, ctx := range []string{"", "packets", "topics", "held"} {
		name := ctx
		if name == "" {
			name = "everywhere"
		}
		fmt.Fprintf(&sb, "%s\n", name)
		for _, b := range Bindings {
			if b.Context != ctx {
				continue
			}
			live := ""
			if b.Live {
				live = " (live proxy only)"
			}
			fmt.Fprintf(&sb, "  %-8s %s%s\n", b.Key, b.Help, live)
		}
	}
	sb.WriteString("\nThe mouse selects rows and panes; the wheel scrolls.\n")
	return sb.String()
}

// FooterText is the footer, made from the table.
func FooterText() string {
	var parts []string
	for _, b := range Bindings {
		if b.Footer {
			parts = append(parts, b.Key+" "+b.Action)
		}
	}
	return strings.Join(parts, "  ")
}
