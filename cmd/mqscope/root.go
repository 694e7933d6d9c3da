package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/mqscope/mqscope/inspect"
)

// streams holds the IO a command reads and writes, so tests can run commands in memory, and
// the global --color setting that decides how text is written to Out.
type streams struct {
	In    io.Reader
	Out   io.Writer
	Err   io.Writer
	Color colorMode
}

func newRootCmd(io *streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "mqscope",
		Short: "A debugger for MQTT 5 and 3.1.1 connections",
		Long: `mqscope decodes and explains MQTT 5 and 3.1.1 traffic: every frame, what each side
asked for and was granted, topic aliases, reason codes, and every rule of the standard a peer broke.

Exit status: 0 when all went well; 1 on an error (a file that cannot be read, a malformed
packet given to decode, a finding at or above read --fail-on); 2 when mqscope was called wrongly
(an unknown command or flag, a bad flag value).`,
		Version:       buildVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("mqscope {{.Version}}\n")
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().Var(&io.Color, "color", "colour in text output: auto (on a terminal, unless NO_COLOR is set or TERM=dumb), always or never")
	_ = root.RegisterFlagCompletionFunc("color", cobra.FixedCompletions(colorModes, cobra.ShellCompDirectiveNoFileComp))
	root.AddCommand(newVersionCmd(io), newDecodeCmd(io))
	root.AddCommand(newReadCmd(io), newCaptureCmd(io))
	root.AddCommand(newProxyCmd(io), newCACmd(io), newDemoCmd(io))
	root.AddCommand(newUICmd(io))
	root.AddCommand(newProbeCmd(io), newReplayCmd(io))
	root.AddCommand(newTestCmd(io))
	// cobra adds these at Execute; added now, their argument errors are usage errors too.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	usageArgs(root)
	helpUnknown(root)
	return root
}

// helpUnknown makes "mqscope help NAME" of a command mqscope does not have a usage error, as
// "mqscope NAME" is (cobra prints "Unknown help topic" and exits 0).
func helpUnknown(root *cobra.Command) {
	for _, h := range root.Commands() {
		if h.Name() != "help" || h.Run == nil {
			continue
		}
		show := h.Run
		h.Run = nil
		h.RunE = func(cmd *cobra.Command, args []string) error {
			if target, _, err := root.Find(args); len(args) > 0 && (err != nil || target == nil || target == root) {
				return unknownCommand(root, args[0])
			}
			show(cmd, args)
			return nil
		}
	}
}

// unknownCommand is the usage error for a command mqscope does not have, with suggestions.
func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // as cobra's own suggestions
	}
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError{fmt.Errorf("%s (%s --help lists the commands)", msg, cmd.CommandPath())}
}

// usageArgs makes every error of a command's argument check a usage error (exit status 2),
// as flag errors are, and an unknown subcommand of a command that only groups others (mqscope,
// mqscope ca) too, where cobra would print help or fail with status 1.
func usageArgs(c *cobra.Command) {
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
	if c.HasSubCommands() && !c.Runnable() {
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return unknownCommand(cmd, args[0])
			}
			return cmd.Help()
		}
	}
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			var ue usageError
			if err != nil && !errors.As(err, &ue) {
				return usageError{err}
			}
			return err
		}
	}
}

// colorMode is the value of --color.
type colorMode string

var colorModes = []string{"auto", "always", "never"}

func (m *colorMode) String() string {
	if *m == "" {
		return "auto"
	}
	return string(*m)
}

func (m *colorMode) Set(s string) error {
	for _, c := range colorModes {
		if s == c {
			*m = colorMode(s)
			return nil
		}
	}
	return fmt.Errorf("want %s", strings.Join(colorModes, ", "))
}

func (m *colorMode) Type() string { return "WHEN" }

// colorFor tells whether text written to w is coloured: always, never, or (auto) when w is a
// terminal and neither NO_COLOR nor TERM=dumb says otherwise.
func (m colorMode) colorFor(w io.Writer) bool {
	switch m {
	case "always":
		return true
	case "never":
		return false
	}
	f, ok := w.(*os.File)
	return ok && inspect.UseColor(f)
}

// colorForScreen tells whether the terminal UI is coloured: always, never, or (auto) unless
// NO_COLOR or TERM=dumb says otherwise. The UI draws on the terminal whatever standard output
// is (redirected to a file, say), so that is not asked.
func (m colorMode) colorForScreen() bool {
	switch m {
	case "always":
		return true
	case "never":
		return false
	}
	return os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

// stderrLog returns a Logf writing "mqscope: " lines to w, one at a time: the proxy and its
// embedded broker log from the goroutines of many connections, and w need not be safe for
// concurrent writes (a buffer in tests).
func stderrLog(w io.Writer) func(string, ...any) {
	var mu sync.Mutex
	return func(format string, args ...any) {
		line := fmt.Sprintf("mqscope: "+format+"\n", args...)
		mu.Lock()
		defer mu.Unlock()
		io.WriteString(w, line)
	}
}
