package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/gdamore/tcell/v2"
	"github.com/mqscope/mqscope/capture"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/ui"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// uiOptions are the options of the terminal UI, on mqscope ui and with --ui.
type uiOptions struct {
	on         bool // --ui
	maxPackets int
	readonly   bool
	// screen, when set, is drawn on instead of the terminal (tests).
	screen tcell.Screen
	// read, when set, is called with the model once the source has ended (tests).
	read func(*ui.Model)
	// afterDraw, when set, is called after each screen is drawn (benchmarks).
	afterDraw func(*ui.UI, *ui.Model)
}

func (u *uiOptions) addFlags(f *pflag.FlagSet, withSwitch bool) {
	if withSwitch {
		f.BoolVar(&u.on, "ui", false, "show the interactive terminal UI instead of printing")
	}
	f.IntVar(&u.maxPackets, "max-packets", ui.DefaultCap, "packets the UI keeps; past it the oldest are dropped (and the UI says so)")
}

// options adds the hooks of tests and benchmarks to o.
func (u *uiOptions) options(m *ui.Model, o ui.Options) ui.Options {
	if f := u.afterDraw; f != nil {
		o.AfterDraw = func(v *ui.UI) { f(v, m) }
	}
	return o
}

// checkUI refuses the print-only flags with --ui.
func checkUI(cmd *cobra.Command) error {
	for _, name := range []string{"format", "summary", "write", "fail-on", "payload"} {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			return usageError{fmt.Errorf("--%s is for printed output, not for the UI (w in the UI exports)", name)}
		}
	}
	return nil
}

func newUICmd(io *streams) *cobra.Command {
	o := &readOptions{io: io}
	cmd := &cobra.Command{
		Use:   "ui FILE...",
		Short: "Explore captures in an interactive terminal UI",
		Long: `Read pcap and pcapng captures (as mqscope read does) into an interactive terminal UI:
the connections; the packets of one connection or of all, with a filter (/) in the --filter
language; the detail tree of the selected packet with its findings and links to the packet
it answers or that caused it; its bytes, the selected field highlighted; the session of a
connection (limits per direction, topic aliases, in flight, keep alive); the topics with
their last payload and a diff with the previous one. ? lists every key.

The screens open at once and fill as the files are read. The UI keeps --max-packets packets;
past that the oldest are dropped, and the header says how many.`,
		Example: `  mqscope ui customer.pcapng
  mqscope ui --filter 'level == "error"' a.pcap b.pcap`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{errors.New("ui needs at least one capture file")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.files = args
			if err := o.out.check(); err != nil {
				return err
			}
			return runReadUI(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.out.profile, "profile", "", "check against a broker profile: a built-in `NAME` (spec, apsaramq) or a YAML file")
	f.StringVar(&o.out.filter, "filter", "", "show only packets matching `EXPR` at first (/ changes it)")
	f.BoolVar(&o.out.showSecrets, "show-secrets", false, "show passwords instead of redacting them")
	versionFlag(f, &o.out.version, versionUsage)
	f.Var(&o.out.ports, "port", "a TCP `PORT` carrying MQTT besides 1883 (repeatable)")
	f.Var(&o.out.tlsPorts, "tls-port", "a TCP `PORT` carrying MQTT over TLS besides 8883 (repeatable)")
	f.StringArrayVar(&o.out.keylogs, "keylog", nil, "decrypt TLS with the secrets of key log `FILE` (repeatable; default: $SSLKEYLOGFILE)")
	o.out.payload, o.out.format = "preview", "text"
	o.ui.addFlags(f, false)
	completeOutputFlags(cmd)
	return cmd
}

// runReadUI shows capture files in the UI.
func runReadUI(ctx context.Context, o *readOptions) error {
	if slices.Contains(o.files, capture.Stdin) {
		return usageError{errors.New("the UI reads files, not standard input (-): its keys come from the terminal")}
	}
	keys, err := o.out.loadKeys(o.io.Err, false)
	if err != nil {
		return err
	}
	aopts := capture.Options{Ports: ports(capture.DefaultPort, o.out.ports), TLSPorts: ports(capture.DefaultTLSPort, o.out.tlsPorts), TLSKeys: keys}
	src := &capture.Files{Names: o.files, Options: aopts}
	return runUI(ctx, o.io, &o.out, &o.ui, uiSource{
		name: strings.Join(o.files, " "),
		why:  ui.WhyFile,
		run:  func(ctx context.Context, in *capture.Inspector) error { return src.Run(ctx, in) },
	})
}

// runCaptureUI shows a live capture in the UI.
func runCaptureUI(ctx context.Context, o *captureOptions) error {
	keys, err := o.out.loadKeys(o.io.Err, true)
	if err != nil {
		return err
	}
	src, err := capture.OpenLive(o.iface)
	if err != nil {
		return err
	}
	defer src.Close()
	src.Options = capture.Options{Ports: ports(capture.DefaultPort, o.out.ports), TLSPorts: ports(capture.DefaultTLSPort, o.out.tlsPorts), TLSKeys: keys}
	if o.ready != nil {
		o.ready()
	}
	return runUI(ctx, o.io, &o.out, &o.ui, uiSource{
		name: "capture -i " + o.iface,
		live: true,
		why:  ui.WhyCapture,
		run:  func(ctx context.Context, in *capture.Inspector) error { return src.Run(ctx, in) },
	})
}

// uiSource is what the UI shows: run feeds the inspector until the source ends.
type uiSource struct {
	name string
	live bool
	why  string     // why actions are not possible
	act  ui.Actions // nil: none, for why
	run  func(ctx context.Context, in *capture.Inspector) error
}

// runUI reads src into the UI's model on its own goroutine while the UI runs. A panic while
// reading stops the UI first, so that the terminal is restored before it is reported.
func runUI(ctx context.Context, io *streams, out *outputOptions, uo *uiOptions, src uiSource) error {
	if ctx == nil {
		ctx = context.Background()
	}
	opts, err := out.inspectOptions()
	if err != nil {
		return err
	}
	filter, err := out.compileFilter()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := ui.NewModel(uo.maxPackets)
	if filter != nil {
		m.SetView(0, filter)
	}
	in := &capture.Inspector{Options: opts, Workers: runtime.GOMAXPROCS(0),
		Emit: func(r inspect.Record) error { m.Add(r); return nil }}
	if src.live {
		in.Workers = 1
	}
	act := src.act
	switch {
	case act == nil:
		act = ui.NoActions{Reason: src.why}
	case uo.readonly:
		act = ui.NoActions{Reason: ui.WhyReadOnly}
	}
	u := ui.New(m, act, uo.options(m, ui.Options{Source: src.name, Live: src.live, NoColor: !io.Color.colorForScreen(), ShowSecrets: out.showSecrets}))
	var panicked atomic.Value
	readDone := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				// Where it happened is on this goroutine's stack, not on the one that re-raises it.
				panicked.Store(fmt.Sprintf("%v\n\nthe reading goroutine's stack:\n%s", p, debug.Stack()))
				cancel()
			}
		}()
		m.SetStatus("reading")
		err := src.run(ctx, in)
		if cerr := in.Close(); err == nil {
			err = cerr
		}
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			m.SetStatus("error: " + err.Error())
		case src.live:
			m.SetStatus("source ended")
		default:
			m.SetStatus("read")
		}
		if uo.read != nil {
			uo.read(m)
		}
		readDone <- err
	}()
	uerr := u.Run(ctx, uo.screen)
	cancel()
	if p := panicked.Load(); p != nil {
		panic(p)
	}
	if err := <-readDone; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return uerr
}
