package scenario

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/replay"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/proxy/fault"
	"github.com/mqscope/mqscope/stream"
)

// Status is how a scenario or an expectation ended.
type Status int

// The statuses, in the order a scenario's is chosen from its expectations' (the worst wins).
const (
	Passed Status = iota
	Skipped
	Failed
	Errored
)

func (s Status) String() string {
	return [...]string{"pass", "skip", "fail", "error"}[s]
}

// Verdict is one expectation decided.
type Verdict struct {
	Scenario string
	Name     string // the expectation's name, else what it expects
	Pos      string // line:column in the file
	Status   Status
	Expected string
	Seen     string        // what decided it, or the closest thing seen
	At       time.Duration // since the scenario started
}

func (v Verdict) String() string {
	switch v.Status {
	case Passed:
		return fmt.Sprintf("%s: %s", v.Name, v.Seen)
	}
	return fmt.Sprintf("%s: expected %s; seen: %s", v.Name, v.Expected, v.Seen)
}

// Result is a scenario's run.
type Result struct {
	File     *File
	Scenario *Scenario
	Status   Status
	Verdicts []Verdict
	Skip     string // the requirement not met
	Err      error  // the harness failed
	Seed     uint64
	ClientID string
	Limits   [][2]string // negotiated: name, value (sorted)
	Timeline string      // the decoded records, as text
	Device   string      // the device's output
	Capture  string      // the pcapng of the run
	Start    time.Time
	Duration time.Duration
}

// Options are a run's settings.
type Options struct {
	// Seed is the random source's seed for scenarios that give none (1 when 0).
	Seed uint64
	// CaptureDir, when set, receives a pcapng per scenario.
	CaptureDir string
	// Device, when set, replaces every scenario's device by this command (see Device.Run).
	Device string
	// Decided hears of each verdict as it is decided (from the scenario's goroutine).
	Decided func(Verdict)
	// Logf reports what the proxy and broker log, from many goroutines at once (and from
	// scenarios running at once, when they share it).
	Logf func(format string, args ...any)
	// Sessions reads the sessions of a capture file that sel selects, for replay devices (the
	// caller reads captures: this package does not).
	Sessions func(ctx context.Context, path string, sel replay.Selector) ([]*replay.Session, error)
}

// RunFile runs a file's scenarios (at the same time when it allows, up to parallel) and returns
// their results in file order.
func RunFile(ctx context.Context, f *File, o Options, parallel int) []*Result {
	res := make([]*Result, len(f.Scenarios))
	if !f.Parallel || parallel < 1 {
		parallel = 1
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, sc := range f.Scenarios {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			res[i] = Run(ctx, f, sc, o)
		}()
	}
	wg.Wait()
	return res
}

// run is one scenario's run.
type run struct {
	f   *File
	sc  *Scenario
	o   Options
	res *Result

	mu     sync.Mutex
	queue  []event
	notify chan struct{}
	tl     timelineText // every event as text, bounded

	exps      []*expState
	start     time.Time
	anchors   map[string]time.Time // first connect, connack, fault, close
	open      map[int]bool         // connections with records and no close yet
	firstConn int                  // the connection of the first CONNECT
	// stepsAhead: expect steps of the built-in client it has not reached yet; the run is not
	// settled before it has (they are expectations too).
	stepsAhead int
	// deviceEnded: the loop heard that the device ended.
	deviceEnded bool
	skipped     string
}

// expState is an expectation being decided.
type expState struct {
	e       *Expect
	kind    matcher // e's, for this run
	mode    mode
	n, hits int
	near    string
	decided bool
	after   string       // the anchor of its window, when not the expectation's own
	ch      chan Verdict // for an expect step waiting on it
}

// Run runs one scenario.
func Run(ctx context.Context, f *File, sc *Scenario, o Options) *Result {
	r := &run{f: f, sc: sc, o: o, notify: make(chan struct{}, 1), anchors: map[string]time.Time{}, open: map[int]bool{}}
	r.res = &Result{File: f, Scenario: sc, Seed: sc.Seed}
	if r.res.Seed == 0 {
		r.res.Seed = max(o.Seed, 1)
	}
	if o.Logf == nil {
		r.o.Logf = func(string, ...any) {}
	}
	r.res.Start = time.Now()
	err := r.run(ctx)
	r.res.Duration = time.Since(r.res.Start)
	switch {
	case err != nil:
		r.res.Status, r.res.Err = Errored, err
	case r.skipped != "":
		r.res.Status, r.res.Skip = Skipped, r.skipped
	default:
		for _, v := range r.res.Verdicts {
			r.res.Status = max(r.res.Status, v.Status)
		}
	}
	return r.res
}

func (r *run) run(ctx context.Context) (err error) {
	sc := r.sc
	if why := r.staticRequirements(); why != "" {
		r.skipped = why
		return nil
	}
	for _, e := range sc.Expect {
		r.exps = append(r.exps, r.track(e))
	}
	cfg, err := r.config()
	if err != nil {
		return err
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		return fmt.Errorf("starting the proxy: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		serr := srv.Shutdown(sctx)
		if e := <-served; serr == nil {
			serr = e
		}
		for _, ob := range cfg.Observers {
			if fl, ok := ob.(stream.Flusher); ok {
				if ferr := fl.Flush(); serr == nil {
					serr = ferr
				}
			}
		}
		if err == nil && serr != nil {
			err = fmt.Errorf("stopping the proxy: %w", serr)
		}
		r.res.Timeline = r.timeline()
	}()
	r.start = time.Now()
	ctx, cancel := context.WithTimeout(ctx, sc.Timeout)
	defer cancel()

	dctx, stopDevice := context.WithCancel(ctx)
	deviceDone := make(chan error, 1)
	var out lockedBuffer
	addr := srv.Addr().String()
	switch d := r.device(); {
	case d.Run != "":
		cmd, err := r.command(dctx, d.Run, addr, &out)
		if err != nil {
			stopDevice()
			return err
		}
		go func() { deviceDone <- waitDevice(cmd) }()
	case d.Client != nil:
		for _, st := range d.Client.Steps {
			if st.Expect != nil {
				r.stepsAhead++
			}
		}
		c := &client{addr: addr, logf: func(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }, expect: r.stepExpect}
		go func() { deviceDone <- c.run(dctx, d.Client.Steps) }()
	case d.Replay != nil:
		go func() { deviceDone <- r.replay(dctx, d.Replay, addr, &out) }()
	default: // external: it connects on its own
	}
	err = r.loop(ctx, deviceDone)
	stopDevice()
	if !r.deviceEnded && (r.device().Run != "" || r.device().Client != nil || r.device().Replay != nil) {
		if derr := <-deviceDone; err == nil && derr != nil {
			err = derr
		}
	}
	r.res.Device = out.String()
	return err
}

// device is the scenario's device, or Options.Device.
func (r *run) device() Device {
	if r.o.Device != "" {
		return Device{Run: r.o.Device}
	}
	return r.sc.Device
}

// config is the proxy's configuration for the scenario.
func (r *run) config() (proxy.Config, error) {
	sc := r.sc
	var cfg proxy.Config
	l, err := proxy.ParseEndpoint(sc.Listen, "127.0.0.1")
	if err != nil {
		return cfg, fmt.Errorf("listen: %w", err)
	}
	if l.Transport != stream.TCP && (r.device().Client != nil || r.device().Replay != nil) {
		return cfg, fmt.Errorf("listen %s: the built-in client and replay speak plain TCP", sc.Listen)
	}
	cfg.Listen = l
	if sc.Upstream == "embedded" {
		cfg.Embedded, cfg.EmbeddedProfile = true, sc.prof
	} else if cfg.Upstream, err = proxy.ParseEndpoint(sc.Upstream, "127.0.0.1"); err != nil {
		return cfg, fmt.Errorf("upstream: %w", err)
	}
	cfg.TransparentShutdown = true // the end of a run is not part of what is tested
	cfg.Rand = rand.New(rand.NewPCG(r.res.Seed, 0x6d71))
	cfg.Logf = r.o.Logf
	if len(sc.rules) > 0 {
		set := &fault.Set{Rules: sc.rules, Report: func(a fault.Applied) { r.push(event{t: a.Time, fault: &a}) }}
		cfg.Stages = set.Stages
	}
	in := &inspect.Observer{Options: inspect.Options{Profile: sc.prof, Sessions: inspect.NewSessions()}, Emit: func(rec inspect.Record) {
		r.push(event{t: recordTime(rec), rec: rec})
	}}
	cfg.Observers = []stream.Observer{in}
	if r.o.CaptureDir != "" {
		r.res.Capture = filepath.Join(r.o.CaptureDir, slug(r.f.Name)+"-"+slug(sc.Name)+".pcapng")
		listen, _ := netip.ParseAddrPort(l.Addr)
		rec, err := pcapng.NewRecorder(r.res.Capture, listen, r.o.Logf)
		if err != nil {
			return cfg, fmt.Errorf("capture: %w", err)
		}
		cfg.Observers = append(cfg.Observers, rec)
	}
	return cfg, nil
}

// varRef is {name} in a run: command.
var varRef = regexp.MustCompile(`\{` + varPattern + `\}`)

var unslug = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func slug(s string) string { return strings.Trim(unslug.ReplaceAllString(s, "-"), "-") }

func recordTime(rec inspect.Record) time.Time {
	switch x := rec.(type) {
	case *inspect.PacketRecord:
		return x.Time
	case *inspect.CloseRecord:
		return x.Time
	case *inspect.SessionRecord:
		return x.Time
	}
	return time.Now()
}

// push queues an event from the proxy's goroutines; the loop takes them in order.
func (r *run) push(ev event) {
	r.mu.Lock()
	r.queue = append(r.queue, ev)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *run) track(e *Expect) *expState {
	m, n := e.mode()
	return &expState{e: e, kind: e.fresh(), mode: m, n: n}
}

// stepExpect is an expect step of the built-in client: it is decided like the others, from
// now, and the client waits for it.
func (r *run) stepExpect(ctx context.Context, e *Expect) Verdict {
	x := r.track(e)
	x.ch = make(chan Verdict, 1)
	r.push(event{t: time.Now(), step: x})
	select {
	case v := <-x.ch:
		return v
	case <-ctx.Done():
		return Verdict{}
	}
}

// loop decides the expectations from the events as they come, and at their deadlines.
func (r *run) loop(ctx context.Context, deviceDone <-chan error) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	done := false
	for {
		r.mu.Lock()
		q := r.queue
		r.queue = nil
		r.mu.Unlock()
		for i := range q {
			ev := &q[i]
			r.expire(ev.t)
			r.see(ev)
			if r.skipped != "" {
				return nil
			}
		}
		if r.settled() || (done && len(r.open) == 0) {
			r.end("the device finished")
			return nil
		}
		next, ok := r.nextDeadline()
		if ok {
			timer.Reset(max(time.Until(next), 0))
		}
		select {
		case <-r.notify:
		case <-timer.C:
			r.expire(time.Now())
		case err := <-deviceDone:
			done, deviceDone, r.deviceEnded = true, nil, true
			if err != nil {
				return err
			}
		case <-ctx.Done():
			r.end(fmt.Sprintf("the scenario's timeout (%s) passed", r.sc.Timeout))
			return nil
		}
		if !ok {
			timer.Stop()
		}
	}
}

// see hands an event to the expectations and the requirements.
func (r *run) see(ev *event) {
	if ev.step != nil {
		// A step's window starts when the step runs.
		r.stepsAhead--
		r.exps = append(r.exps, ev.step)
		ev.step.after = fmt.Sprintf("step %d", len(r.exps))
		r.anchors[ev.step.after] = ev.t
		return
	}
	r.tl.add(ev)
	r.anchor(ev)
	if why := r.timelineRequirements(ev); why != "" {
		r.skipped = why
		return
	}
	if ev.rec == nil {
		return
	}
	for _, x := range r.exps {
		if x.decided {
			continue
		}
		start, armed := r.windowStart(x)
		if !armed || ev.t.Before(start) {
			continue
		}
		s := x.kind.see(ev, r.rel)
		switch {
		case s.fail != "":
			r.decide(x, Failed, s.fail, ev.t)
			continue
		case !s.hit:
			if s.near != "" {
				x.near = s.near
			}
			continue
		}
		x.hits++
		x.near = s.near
		switch x.mode {
		case atLeast:
			if x.hits >= x.n {
				r.decide(x, Passed, s.near, ev.t)
			}
		case never:
			r.decide(x, Failed, s.near, ev.t)
		case exactly:
			if x.hits > x.n {
				r.decide(x, Failed, fmt.Sprintf("%d so far, the last: %s", x.hits, s.near), ev.t)
			}
		}
	}
}

// anchor notes the first connect, CONNACK, fault and close, and which connections are open.
func (r *run) anchor(ev *event) {
	first := func(k string) {
		if _, ok := r.anchors[k]; !ok {
			r.anchors[k] = ev.t
		}
	}
	if ev.fault != nil {
		first("fault")
	}
	switch rec := ev.rec.(type) {
	case *inspect.PacketRecord:
		r.open[rec.Conn] = true
		switch rec.Type() {
		case decode.CONNECT:
			if _, ok := r.anchors["connect"]; !ok {
				r.firstConn = rec.Conn
			} else if rec.Conn != r.firstConn {
				first("reconnect")
			}
			first("connect")
			if c, ok := rec.Packet.(*decode.Connect); ok && r.res.ClientID == "" {
				r.res.ClientID = c.ClientID
			}
		case decode.CONNACK:
			first("connack")
		}
	case *inspect.SessionRecord:
		r.limits(rec)
	case *inspect.CloseRecord:
		delete(r.open, rec.Conn)
		first("close")
	}
}

// limits keeps the first session's negotiated limits for the report.
func (r *run) limits(s *inspect.SessionRecord) {
	if r.res.Limits != nil {
		return
	}
	if s.Effective.ClientID != "" {
		r.res.ClientID = s.Effective.ClientID
	}
	add := func(k string, v any) { r.res.Limits = append(r.res.Limits, [2]string{k, fmt.Sprint(v)}) }
	e := s.Effective
	add("keep_alive", e.KeepAlive)
	add("session_expiry_interval", e.SessionExpiryInterval)
	for _, d := range []stream.Dir{stream.C2S, stream.S2C} {
		l := e.Limit(d)
		add(d.String()+".maximum_packet_size", l.MaximumPacketSize)
		add(d.String()+".receive_maximum", l.ReceiveMaximum)
		add(d.String()+".topic_alias_maximum", l.TopicAliasMaximum)
	}
	add("maximum_qos", e.C2S.MaximumQoS)
	add("retain_available", e.C2S.RetainAvailable)
	sort.Slice(r.res.Limits, func(i, j int) bool { return r.res.Limits[i][0] < r.res.Limits[j][0] })
}

// windowStart is when x starts looking.
func (r *run) windowStart(x *expState) (time.Time, bool) {
	a := x.e.win.After
	if x.after != "" {
		a = x.after
	}
	if a == "" || a == "start" {
		return r.start, true
	}
	t, ok := r.anchors[a]
	return t, ok
}

// deadline is when x is decided if nothing decides it before; false when only the end does.
func (r *run) deadline(x *expState) (time.Time, bool) {
	within := x.e.win.Within
	start, ok := r.windowStart(x)
	if ws, has := x.kind.(windowStarter); has {
		within = x.e.Reconnect.Within
		start, ok = ws.windowStart()
	}
	if within == 0 || !ok {
		return time.Time{}, false
	}
	return start.Add(within), true
}

func (r *run) nextDeadline() (time.Time, bool) {
	var next time.Time
	for _, x := range r.exps {
		if x.decided {
			continue
		}
		if d, ok := r.deadline(x); ok && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	return next, !next.IsZero()
}

// expire decides the expectations whose deadline is before t.
func (r *run) expire(t time.Time) {
	for _, x := range r.exps {
		if d, ok := r.deadline(x); ok && !x.decided && d.Before(t) {
			r.close(x, fmt.Sprintf("within %s", r.windowText(x)), d)
		}
	}
}

func (r *run) windowText(x *expState) string {
	if x.e.Reconnect != nil {
		return x.e.Reconnect.Within.String() + " of the close"
	}
	s := x.e.win.Within.String()
	if a := x.e.win.After; a != "" && a != "start" && x.after == "" {
		s += " after the first " + a
	}
	return s
}

// end decides what is left when the run ends.
func (r *run) end(why string) {
	for _, x := range r.exps {
		if !x.decided {
			r.close(x, "before the run ended ("+why+")", time.Now())
		}
	}
}

// close decides x when its time is up.
func (r *run) close(x *expState, when string, t time.Time) {
	none := x.near
	if none == "" {
		none = "nothing"
	}
	switch x.mode {
	case atLeast:
		if x.n > 1 {
			none = fmt.Sprintf("%d of %d; the last: %s", x.hits, x.n, none)
		}
		r.decide(x, Failed, none+" "+when, t)
	case never:
		r.decide(x, Passed, "none "+when, t)
	case exactly:
		if x.hits == x.n {
			r.decide(x, Passed, fmt.Sprintf("%d %s", x.hits, when), t)
		} else {
			r.decide(x, Failed, fmt.Sprintf("%d %s; the last: %s", x.hits, when, none), t)
		}
	}
}

func (r *run) decide(x *expState, s Status, seen string, t time.Time) {
	x.decided = true
	v := Verdict{Scenario: r.sc.Name, Name: x.e.Name, Pos: x.e.pos, Status: s, Expected: x.kind.expected(), Seen: seen, At: t.Sub(r.start)}
	if x.e.win.Within > 0 {
		v.Expected += " within " + r.windowText(x)
	}
	if v.Name == "" {
		v.Name = x.kind.expected()
	}
	r.res.Verdicts = append(r.res.Verdicts, v)
	if r.o.Decided != nil {
		r.o.Decided(v)
	}
	if x.ch != nil {
		x.ch <- v
	}
}

// settled: every expectation is decided, those of expect steps the client has yet to reach
// included.
func (r *run) settled() bool {
	if r.stepsAhead > 0 {
		return false
	}
	for _, x := range r.exps {
		if !x.decided {
			return false
		}
	}
	return true
}

func (r *run) rel(t time.Time) string {
	return fmt.Sprintf("+%.3fs", t.Sub(r.start).Seconds())
}

// timeline renders every record and fault of the run as text.
func (r *run) timeline() string {
	r.mu.Lock()
	q := r.queue
	r.queue = nil
	r.mu.Unlock()
	for i := range q {
		if q[i].step == nil {
			r.tl.add(&q[i])
		}
	}
	return r.tl.String()
}

// Bounds of a run's timeline text: its first timelineHead bytes and its last timelineTail are
// kept, what falls between is counted.
const (
	timelineHead = 2 << 20
	timelineTail = 6 << 20
)

// timelineText is a run's events as text, rendered as they come, so that a long run keeps
// text, not records and the frames they point into; past the bounds, the middle goes.
type timelineText struct {
	head    []byte
	full    bool     // the head is full: events go to the tail
	tail    []string // one per event; tail[first:] are kept
	first   int
	size    int // bytes of tail[first:]
	omitted int // events left out between head and tail
	buf     []byte
}

// add renders an event.
func (tl *timelineText) add(ev *event) {
	b := tl.buf[:0]
	if ev.fault != nil {
		b = fmt.Appendf(b, "%s fault %s\n", ev.t.Format("15:04:05.000000"), ev.fault)
	} else {
		b = inspect.AppendText(b, ev.rec, inspect.TextOptions{})
	}
	tl.buf = b
	if !tl.full {
		if len(tl.head)+len(b) <= timelineHead {
			tl.head = append(tl.head, b...)
			return
		}
		tl.full = true
	}
	tl.tail = append(tl.tail, string(b))
	tl.size += len(b)
	for tl.size > timelineTail && tl.first < len(tl.tail)-1 {
		tl.size -= len(tl.tail[tl.first])
		tl.tail[tl.first] = ""
		tl.first++
		tl.omitted++
	}
	if tl.first >= 1024 && tl.first > len(tl.tail)/2 {
		tl.tail = append([]string(nil), tl.tail[tl.first:]...)
		tl.first = 0
	}
}

// String returns the text: the head, how many events were left out, the tail.
func (tl *timelineText) String() string {
	b := append([]byte(nil), tl.head...)
	if tl.omitted > 0 {
		b = fmt.Appendf(b, "... %d records and faults left out (the timeline keeps its first %d MiB and its last %d MiB) ...\n", tl.omitted, timelineHead>>20, timelineTail>>20)
	}
	for _, l := range tl.tail[tl.first:] {
		b = append(b, l...)
	}
	return string(b)
}

// command starts a run: device.
func (r *run) command(ctx context.Context, line, addr string, out *lockedBuffer) (*exec.Cmd, error) {
	host, port, _ := net.SplitHostPort(addr)
	vars := map[string]string{"host": host, "port": port, "addr": addr}
	for k, v := range r.sc.Vars {
		vars[k] = v
	}
	line = varRef.ReplaceAllStringFunc(line, func(ref string) string {
		if v, ok := vars[ref[1:len(ref)-1]]; ok {
			return v
		}
		return ref // not ours: the shell's
	})
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = os.Environ()
	for k, v := range vars {
		cmd.Env = append(cmd.Env, "MQSCOPE_"+strings.ToUpper(k)+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	return cmd, nil
}

// waitDevice waits for a run: device; how it exits is its own business (the expectations say
// what matters), so only a failure to wait is an error.
func waitDevice(cmd *exec.Cmd) error {
	err := cmd.Wait()
	var ee *exec.ExitError
	if err == nil || errors.As(err, &ee) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil // it exited, or was stopped at the end of the run
	}
	return fmt.Errorf("device: %w", err)
}

// lockedBuffer collects a device's output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
