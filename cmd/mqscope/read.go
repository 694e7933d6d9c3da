package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mqscope/mqscope/capture"
	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/inspect/payload"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// outputOptions are the flags read and capture share: what to print and which packets.
type outputOptions struct {
	format      string
	summary     bool
	profile     string
	filter      string
	payload     string
	showSecrets bool
	idle        time.Duration
	version     int
	ports       portsFlag
	tlsPorts    portsFlag
	write       string
	failOn      string // read --fail-on: "", "error" or "warning"
	keylogs     []string
}

func (o *outputOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.format, "format", "text", "output format: text or jsonl")
	f.BoolVar(&o.summary, "summary", false, "print one summary per connection instead of every packet (with --format jsonl: the session, close and tls records)")
	f.StringVar(&o.profile, "profile", "", "check against a broker profile: a built-in `NAME` (spec, apsaramq) or a YAML file")
	f.StringVar(&o.filter, "filter", "", "only packets matching `EXPR` (e.g. 'type == \"PUBLISH\" && qos > 0')")
	f.StringVar(&o.payload, "payload", "preview", "payloads shown: none, preview or full")
	f.BoolVar(&o.showSecrets, "show-secrets", false, "print passwords instead of redacting them")
	f.DurationVar(&o.idle, "idle", 5*time.Minute, "let a connection quiet for `DURATION` of capture time go of its buffers and older packets, keeping its negotiated state (said on its next record; 0: never)")
	versionFlag(f, &o.version, versionUsage)
	f.Var(&o.ports, "port", "a TCP `PORT` carrying MQTT besides 1883 (repeatable); MQTT on other ports is found by its CONNECT")
	f.Var(&o.tlsPorts, "tls-port", "a TCP `PORT` carrying MQTT over TLS besides 8883 (repeatable)")
	f.StringArrayVar(&o.keylogs, "keylog", nil, "decrypt TLS with the secrets of key log `FILE` (SSLKEYLOGFILE format; repeatable; default: $SSLKEYLOGFILE)")
}

// versionUsage is the help of --version in read, capture and proxy.
const versionUsage = "protocol level of connections whose CONNECT is not seen: 3 (3.1), 4 (3.1.1) or 5 (default: told by the packets)"

// check validates the flags.
func (o *outputOptions) check() error {
	if err := checkVersion(o.version); err != nil {
		return err
	}
	if o.format != "text" && o.format != "jsonl" {
		return usageError{fmt.Errorf("--format %q: want text or jsonl", o.format)}
	}
	if _, err := payload.ParseMode(o.payload); err != nil {
		return usageError{fmt.Errorf("--payload: %w", err)}
	}
	if o.failOn != "" && o.failOn != "error" && o.failOn != "warning" {
		return usageError{fmt.Errorf("--fail-on %q: want error or warning", o.failOn)}
	}
	return nil
}

func ports(def uint16, extra portsFlag) []uint16 {
	return append([]uint16{def}, extra...)
}

// portsFlag is a repeatable flag of TCP ports (also comma-separated), empty by default.
type portsFlag []uint16

func (p *portsFlag) String() string {
	s := make([]string, len(*p))
	for i, v := range *p {
		s[i] = strconv.Itoa(int(v))
	}
	return strings.Join(s, ",")
}

func (p *portsFlag) Set(s string) error {
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32)
		if err != nil || v == 0 || v > 65535 {
			return fmt.Errorf("port %s: want 1 to 65535", f)
		}
		*p = append(*p, uint16(v))
	}
	return nil
}

func (p *portsFlag) Type() string { return "PORT" }

// output is the inspection of connections and the writing of their records.
type output struct {
	filter *inspect.Filter
	in     *capture.Inspector
	w      inspect.Writer
	bw     *bufio.Writer // the parallel inspector's output
	// findings counts the findings of the records written, by level, for --fail-on.
	findings [decode.LevelInfo + 1]atomic.Int64
}

// cancelWriter cancels the reading when a write fails (e.g. a closed pipe).
type cancelWriter struct {
	w      io.Writer
	cancel func()
}

func (c cancelWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		c.cancel()
	}
	return n, err
}

// inspectOptions are the inspection's options from the flags: payloads, secrets, version,
// profile.
func (o *outputOptions) inspectOptions() (inspect.Options, error) {
	mode, _ := payload.ParseMode(o.payload)
	// Sessions links the connections of one Client Identifier (a takeover); the parallel
	// inspector keeps them on one worker, in capture order.
	opts := inspect.Options{ShowSecrets: o.showSecrets, Payload: mode, Version: decode.Version(o.version), Sessions: inspect.NewSessions()}
	if o.profile != "" {
		p, err := inspect.LoadProfile(o.profile)
		if err != nil {
			return opts, usageError{fmt.Errorf("--profile: %w", err)}
		}
		opts.Profile = p
	}
	return opts, nil
}

// compileFilter compiles --filter (nil when none).
func (o *outputOptions) compileFilter() (*inspect.Filter, error) {
	if o.filter == "" {
		return nil, nil
	}
	f, err := inspect.CompileFilter(o.filter)
	if err != nil {
		return nil, usageError{fmt.Errorf("--filter: %w", err)}
	}
	return f, nil
}

// newOutput compiles the filter, loads the profile and sets up the writer on out (in colour or
// not), for inspecting on that many workers (0: live, one goroutine writing each record at
// once).
func newOutput(o *outputOptions, out io.Writer, color bool, cancel func(), workers int) (*output, error) {
	mode, _ := payload.ParseMode(o.payload)
	opts, err := o.inspectOptions()
	if err != nil {
		return nil, err
	}
	res := &output{}
	res.in = &capture.Inspector{Options: opts}
	if res.filter, err = o.compileFilter(); err != nil {
		return nil, err
	}
	if res.filter != nil {
		res.in.Filter = res.filter.Match
	}
	topts := inspect.TextOptions{Color: color, Payload: mode, ShowSecrets: o.showSecrets}
	// --summary with --format jsonl is the session, close and tls records.
	jopts := inspect.JSONOptions{Payload: mode, ShowSecrets: o.showSecrets, Connections: o.summary}
	textSummary := o.summary && o.format != "jsonl"
	switch {
	case textSummary:
		res.w = inspect.NewSummaryWriter(out, topts)
	case o.format == "jsonl":
		res.w = inspect.NewJSONWriter(out, jopts)
	default:
		res.w = inspect.NewTextWriter(out, topts)
	}
	res.in.Emit = func(r inspect.Record) error {
		err := res.w.Write(r)
		if err != nil {
			cancel()
		}
		return err
	}
	if workers == 0 && !textSummary {
		// Live: each record is written at once, not when a buffer fills.
		var buf []byte
		res.in.Emit = func(r inspect.Record) error {
			if o.format == "jsonl" {
				buf = inspect.AppendJSONLine(buf[:0], r, jopts)
			} else {
				buf = inspect.AppendText(buf[:0], r, topts)
			}
			_, err := out.Write(buf)
			if err != nil {
				cancel()
			}
			return err
		}
	}
	if workers > 1 {
		// Inspect connections on every core; text and JSON are rendered there too, and the
		// summary counted.
		res.in.Workers = workers
		if textSummary {
			// Each worker counts its connections' records.
			parts := make([]*inspect.Summary, workers)
			for k := range parts {
				parts[k] = inspect.NewSummary()
			}
			sw := inspect.NewSummaryWriterOf(out, topts, parts...)
			res.w = sw
			res.in.Collect = func(k int, seq int64, r inspect.Record) { parts[k].Add(seq, r) }
			res.in.Reuse = true // a Summary counts the records, and keeps none
			res.in.Collected = func(seq int64) error {
				err := sw.Written(seq)
				if err != nil {
					cancel()
				}
				return err
			}
		} else {
			res.bw = bufio.NewWriterSize(out, 256<<10)
			res.in.Out = cancelWriter{res.bw, cancel}
			if o.format == "jsonl" {
				res.in.Render = func(b []byte, r inspect.Record) []byte { return inspect.AppendJSONLine(b, r, jopts) }
			} else {
				res.in.Render = func(b []byte, r inspect.Record) []byte { return inspect.AppendText(b, r, topts) }
			}
			res.in.Reuse = true // the records are bytes once rendered
		}
	}
	if o.failOn != "" {
		res.countFindings(mode)
	}
	return res, nil
}

// countFindings makes every way records leave the inspector count their findings (the
// packet's, its payload's, and the close's), on whichever goroutine writes them.
func (res *output) countFindings(mode payload.Mode) {
	count := func(r inspect.Record) {
		var notes []inspect.Note
		switch r := r.(type) {
		case *inspect.PacketRecord:
			notes = append(r.Notes, r.PayloadNotes(mode)...)
		case *inspect.CloseRecord:
			notes = r.Notes
		}
		for _, n := range notes {
			res.findings[n.Level].Add(1)
		}
	}
	in := res.in
	if emit := in.Emit; emit != nil {
		in.Emit = func(r inspect.Record) error { count(r); return emit(r) }
	}
	if render := in.Render; render != nil {
		in.Render = func(b []byte, r inspect.Record) []byte { count(r); return render(b, r) }
	}
	if collect := in.Collect; collect != nil {
		in.Collect = func(k int, seq int64, r inspect.Record) { count(r); collect(k, seq, r) }
	}
}

// failOn returns a findingsError when findings at or above level were written.
func (res *output) failOn(level string) error {
	e := findingsError{level: level, errors: res.findings[decode.LevelError].Load(), warnings: res.findings[decode.LevelWarning].Load()}
	if e.errors > 0 || level == "warning" && e.warnings > 0 {
		return e
	}
	return nil
}

// close flushes the writer.
func (res *output) close() error {
	if err := res.in.Close(); err != nil {
		return err
	}
	if res.bw != nil {
		if err := res.bw.Flush(); err != nil {
			return err
		}
	}
	if err := res.w.Close(); err != nil {
		return err
	}
	return res.in.Err()
}

// readOptions are the options of mqscope read.
type readOptions struct {
	io    *streams
	files []string
	out   outputOptions
	// progress is set when a bar is drawn (standard error is a terminal, input over 64 MB).
	progress bool
	// memProfile: where --memprofile writes the heap profile.
	memProfile string
	// cpuProfile is a file for a CPU profile of the reading (hidden flag, for tuning).
	cpuProfile string
	ui         uiOptions
}

func newReadCmd(io *streams) *cobra.Command {
	o := &readOptions{io: io}
	cmd := &cobra.Command{
		Use:   "read FILE...",
		Short: "Explain every MQTT connection in pcap or pcapng captures",
		Long: `Read pcap and pcapng captures (from tcpdump, Wireshark, dumpcap...) and print the story of
every MQTT connection in them: each packet with what it means, what each side asked for and
was granted, and every rule of the standard a peer broke.

TCP is reassembled (out-of-order segments, retransmissions, overlaps); bytes the capture lost
are reported, and decoding resumes at the next packet. MQTT is found on port 1883 and the
--port ones, by its CONNECT on any other port, and inside WebSocket connections that upgrade
to the mqtt subprotocol. TLS connections (on port 8883, 1883 and the --port and --tls-port
ones, or offering MQTT by ALPN on any port, as AWS IoT devices do on 443) are listed with
their server name and ALPN; other TLS, such as HTTPS, is only counted. With the session keys
(--keylog, $SSLKEYLOGFILE, or a pcapng file's decryption secrets blocks) TLS connections are
decrypted and explained like the others. Several files are read as one capture, in order; files
compressed with gzip, zstd or lz4 are read as they are, and - reads standard input (tcpdump -U -w - | ...).

--write saves the captured packets that carried the packets passing --filter (with their
connections' handshakes) to a new pcapng file.`,
		Example: `  mqscope read customer.pcapng
  mqscope read --summary --profile apsaramq a.pcap b.pcap
  mqscope read --format jsonl --filter 'type == "PUBLISH" && topic matches "^sensors/"' dump.pcapng
  mqscope read --filter 'level == "error"' --write errors.pcapng dump.pcapng
  mqscope read --summary customer.pcap.gz
  mqscope read --keylog keys.log device.pcapng
  tcpdump -i eth0 -U -w - port 1883 | mqscope read -`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{errors.New("read needs at least one capture file")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.files = args
			if err := o.out.check(); err != nil {
				return err
			}
			if o.ui.on {
				if err := checkUI(cmd); err != nil {
					return err
				}
				return runReadUI(cmd.Context(), o)
			}
			if n := slices.Index(args, capture.Stdin); n >= 0 {
				switch {
				case slices.Index(args[n+1:], capture.Stdin) >= 0:
					return usageError{errors.New("standard input (-) can be read only once")}
				case o.out.write != "":
					return usageError{errors.New("--write reads its input twice: give a file, not standard input (-)")}
				}
			}
			if o.out.write != "" {
				if err := checkWriteInputs(o.out.write, args); err != nil {
					return usageError{err}
				}
			}
			return runRead(cmd.Context(), o)
		},
	}
	o.out.addFlags(cmd.Flags())
	cmd.Flags().StringVar(&o.out.write, "write", "", "write the packets that pass the filter to pcapng `FILE`")
	cmd.Flags().StringVar(&o.out.failOn, "fail-on", "", "exit with status 1 when a finding at or above `LEVEL` (error or warning) was reported, for CI")
	_ = cmd.RegisterFlagCompletionFunc("fail-on", cobra.FixedCompletions([]string{"error", "warning"}, cobra.ShellCompDirectiveNoFileComp))
	o.ui.addFlags(cmd.Flags(), true)
	cmd.Flags().StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile to `FILE`")
	_ = cmd.Flags().MarkHidden("cpuprofile")
	cmd.Flags().StringVar(&o.memProfile, "memprofile", "", "write a heap profile to `FILE` when the last 1% of the input is read (what is held for the connections still open)")
	_ = cmd.Flags().MarkHidden("memprofile")
	completeOutputFlags(cmd)
	return cmd
}

func runRead(ctx context.Context, o *readOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// GOGC 100, then 400 with a soft memory limit once the run is long (heapBound).
	defer heapBound(96 << 20)()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wf *os.File
	if o.out.write != "" {
		// Fail early, before reading gigabytes, when the output cannot be created. It holds
		// the CONNECTs with their passwords: 0600.
		f, err := createPrivate(o.out.write, false, o.io.Err)
		if err != nil {
			return err
		}
		wf = f
		defer wf.Close()
	}
	workers := runtime.GOMAXPROCS(0)
	if wf != nil {
		workers = 1 // --write needs to know at once which packets pass the filter
	}
	if slices.Contains(o.files, capture.Stdin) && !stdinIsFile() {
		workers = 0 // a pipe (tcpdump -w - | mqscope read -): each record as soon as it is known
	}
	keys, err := o.out.loadKeys(o.io.Err, false)
	if err != nil {
		return err
	}
	res, err := newOutput(&o.out, o.io.Out, o.io.Color.colorFor(o.io.Out), cancel, workers)
	if err != nil {
		return err
	}
	aopts := capture.Options{Ports: ports(capture.DefaultPort, o.out.ports), TLSPorts: ports(capture.DefaultTLSPort, o.out.tlsPorts),
		TLSKeys: keys, Idle: o.out.idle}
	var keep bitset
	if wf != nil {
		aopts.Keep = keep.set
	}
	src := &capture.Files{Names: o.files, Options: aopts, Progress: o.progressBar()}
	if o.memProfile != "" {
		progress, done, err := heapProfileAtEnd(o.files, o.memProfile, src.Progress)
		if err != nil {
			return err
		}
		src.Progress = progress
		defer func() {
			if err := done(); err != nil {
				fmt.Fprintf(o.io.Err, "mqscope: %v\n", err)
			}
		}()
	}
	readErr := src.Run(ctx, res.in)
	a := src.Analyzer()
	if o.progress {
		fmt.Fprintln(o.io.Err)
	}
	if err := res.close(); err != nil {
		return err
	}
	noteLeftOut(o.io.Err, a.Stats())
	noteDecryption(o.io.Err, keys, a.Stats())
	reportFilterErrors(o.io.Err, res.filter)
	if st := a.Stats(); st.Connections == 0 && readErr == nil {
		fmt.Fprintf(o.io.Err, "mqscope: no MQTT connection in %s (%d TCP); MQTT on a port other than 1883 whose connections began before the capture needs --port\n",
			inspect.Plural(st.Packets, "packet"), st.TCP)
	}
	if errors.Is(readErr, context.Canceled) {
		readErr = nil // stopped by a write error, returned above
	}
	if wf != nil && readErr == nil {
		pw, err := pcapng.NewPacketWriter(wf)
		if err != nil {
			return err
		}
		if err := capture.CopyPackets(o.files, keep.has, pw); err != nil {
			return err
		}
		if err := wf.Close(); err != nil {
			return err
		}
		if err := embedSecrets(o.io.Err, o.out.write, a); err != nil {
			return err
		}
	}
	if readErr == nil && o.out.failOn != "" {
		return res.failOn(o.out.failOn)
	}
	return readErr
}

// reportFilterErrors says on how many packets the filter failed (they were not selected),
// and why the first time.
func reportFilterErrors(w io.Writer, f *inspect.Filter) {
	if n, first := f.Errors(); n > 0 {
		fmt.Fprintf(w, "mqscope: the filter failed on %s (left out of the output); the first: %v\n", inspect.Plural(n, "packet"), first)
	}
}

// noteLeftOut says which connections were left out: TLS ones as not MQTT (and how to list
// them), and those to an MQTT port that could not be shown, with why.
func noteLeftOut(w io.Writer, st capture.Stats) {
	if st.OtherTLS > 0 {
		fmt.Fprintf(w, "mqscope: TLS connections left out: %d (on ports other than 8883 and --tls-port, without MQTT in their ALPN); --tls-port PORT lists them\n", st.OtherTLS)
	}
	if len(st.Unshown) > 0 {
		n, whys := 0, make([]string, 0, len(st.Unshown))
		for _, why := range slices.Sorted(maps.Keys(st.Unshown)) {
			n += st.Unshown[why]
			whys = append(whys, fmt.Sprintf("%s: %d", why, st.Unshown[why]))
		}
		fmt.Fprintf(w, "mqscope: connections to MQTT ports not shown: %d (%s)\n", n, strings.Join(whys, "; "))
	}
}

// checkWriteInputs refuses, before anything is created, inputs that --write cannot use: a
// pipe (read twice, it would be empty the second time) and the output file itself (it would
// be emptied before it is read). Inputs that do not exist are left to the reading.
func checkWriteInputs(out string, inputs []string) error {
	ost, oerr := os.Stat(out)
	for _, in := range inputs {
		st, err := os.Stat(in)
		switch {
		case err != nil:
		case oerr == nil && os.SameFile(ost, st):
			return fmt.Errorf("--write %s is the input %s: it would be overwritten before it is read", out, in)
		case !st.Mode().IsRegular() && !st.IsDir():
			return fmt.Errorf("--write reads its input twice: %s is not a regular file (a pipe?); save it to a file first", in)
		}
	}
	return nil
}

// stdinIsFile tells whether standard input is a regular file rather than a pipe or terminal.
func stdinIsFile() bool {
	fi, err := os.Stdin.Stat()
	return err == nil && fi.Mode().IsRegular()
}

// progressBar returns a progress callback drawing a bar on standard error when it is a
// terminal and the input is large, else nil.
func (o *readOptions) progressBar() func(int64) {
	f, ok := o.io.Err.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	var total int64
	for _, name := range o.files {
		if fi, err := os.Stat(name); err == nil {
			total += fi.Size()
		}
	}
	if total < 64<<20 {
		return nil
	}
	o.progress = true
	return newProgressBar(f, total)
}

// newProgressBar draws a bar of reading total bytes on w and returns the function that
// moves it. Its clock starts now, with a blank bar, not at the first move: the rate of the
// first tick is then the bytes read since the start over the time since the start, not over
// the nanoseconds between two calls.
func newProgressBar(w io.Writer, total int64) func(int64) {
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetDescription("reading"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
	)
	return func(n int64) { _ = bar.Set64(n) }
}

// bitset holds packet numbers.
type bitset []uint64

func (b *bitset) set(n int64) {
	i := int(n >> 6)
	for len(*b) <= i {
		*b = append(*b, 0)
	}
	(*b)[i] |= 1 << (n & 63)
}

func (b *bitset) has(n int64) bool {
	i := int(n >> 6)
	return i < len(*b) && (*b)[i]&(1<<(n&63)) != 0
}
