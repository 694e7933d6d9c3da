package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/spf13/cobra"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/inspect/payload"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/proxy/fault"
	"github.com/mqscope/mqscope/stream"
	"github.com/mqscope/mqscope/ui"
)

// demoOptions are the options of mqscope demo.
type demoOptions struct {
	io *streams

	headless bool
	duration time.Duration
	seed     uint64
	listen   string
	// pace is the pause between the story's steps; 0: the duration spread over the steps.
	pace time.Duration
	// screen, when set, is drawn on instead of the terminal, and drawn is called after each
	// screen is drawn, on the UI's goroutine (tests).
	screen tcell.Screen
	drawn  func()
}

// demoBroker is what the embedded broker grants and enforces in the demo: a Topic Alias
// Maximum small enough for a device to overflow.
var demoBroker = inspect.Profile{Name: "demo", Description: "the embedded broker of mqscope demo", TopicAliasMaximum: 8, ReceiveMaximum: 20}

// demoFaults are the faults the devices meet, each armed by the story just before the step
// that meets it and disarmed once applied.
var demoFaults = []struct{ name, rule string }{
	{"oversize", `oversize dir=s2c client=sensor-1 topic=demo/cmd/# size=max_packet_size+1 name=oversize`},
	{"alias-overflow", `alias dir=c2s client=sensor-2 to=topic_alias_maximum+1 name=alias-overflow`},
	{"server-busy", `disconnect dir=s2c client=sensor-2 after=PUBACK reason=0x89 reason_string="busy (mqscope demo)" name=server-busy`},
}

// demoSteps is about how many pauses the story makes, to spread it over --duration.
const demoSteps = 18

func newDemoCmd(io *streams) *cobra.Command {
	o := &demoOptions{io: io}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Watch simulated MQTT 5 devices meet faults, with nothing to install",
		Long: `Start the embedded broker, mqscope's proxy in front of it and a few simulated MQTT 5
devices, and show what goes through: negotiation, topic aliases, QoS 1 and 2, a request and
its response (Response Topic, Correlation Data), retained messages, user properties, a Will.
On a schedule the devices meet faults the proxy injects (a packet over a device's Maximum
Packet Size, a topic alias over the broker's maximum, a server DISCONNECT 0x89) and react:
they refuse, are refused, and reconnect.

Without --headless the story runs in the terminal UI (as 'mqscope proxy --ui' shows a
proxy), told again and again until you quit (q); the header says what to press, and your own
faults (!) and intercept (i) act besides the story's. --headless prints the story as text,
as 'mqscope proxy' prints it, and exits after --duration. The story is the same each run for
a --seed (the times and the connections' ports differ).`,
		Example: `  mqscope demo
  mqscope demo --headless
  mqscope demo --headless --duration 30s --seed 7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.headless, "headless", false, "print the story as text and exit after --duration")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "how long the story runs (--headless)")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the devices' values, so that a run repeats")
	f.StringVar(&o.listen, "listen", "127.0.0.1:0", "where the proxy listens (the devices connect there; so can your own clients)")
	f.DurationVar(&o.pace, "pace", 0, "pause between the story's steps (default: --duration spread over them)")
	_ = f.MarkHidden("pace")
	return cmd
}

func runDemo(ctx context.Context, o *demoOptions) error {
	if o.duration <= 0 {
		return usageError{fmt.Errorf("--duration %v: want a positive duration", o.duration)}
	}
	pace := o.pace
	switch {
	case pace > 0:
	case o.headless:
		pace = o.duration / demoSteps
	default:
		pace = demoUIPace
	}
	metrics := proxy.NewMetrics()
	var w inspect.Writer
	var model *ui.Model
	var drops inspect.Drops = metrics
	if o.headless {
		topts := inspect.TextOptions{Color: o.io.Color.colorFor(o.io.Out), Payload: payload.Preview}
		w = &storyWriter{Writer: inspect.NewTextWriter(o.io.Out, topts), w: o.io.Out}
	} else {
		model = ui.NewModel(ui.DefaultCap)
		w = modelWriter{model}
		drops = model.Drops(metrics) // the header says what the screens did not get
	}
	out := inspect.NewOutput(w, nil, nil, drops, 1<<16)
	in := proxy.NewInspector(inspect.Options{Payload: payload.Preview, Sessions: inspect.NewSessions()}, out, metrics)

	d, err := newDemoFaults()
	if err != nil {
		out.Close()
		return err
	}
	l, err := proxy.ParseEndpoint(o.listen, "127.0.0.1")
	if err != nil {
		out.Close()
		return usageError{fmt.Errorf("--listen: %w", err)}
	}
	cfg := proxy.Config{Listen: l, Embedded: true, EmbeddedProfile: &demoBroker, Metrics: metrics,
		Observers: []stream.Observer{in}, Stages: d.stages,
		Rand: rand.New(rand.NewPCG(o.seed, 0x6d71)),
		Logf: demoLog(o.io.Err)}
	// In the UI, the user's own faults and intercept act besides the story's.
	live := &fault.Set{Live: true}
	ic := proxy.NewIntercept()
	if model != nil {
		cfg.Stages = chainStages(d.stages, live.Stages, ic.Stages)
		cfg.Logf = func(format string, args ...any) { model.SetStatus(fmt.Sprintf(format, args...)) }
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		out.Close()
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	s := &demoStory{addr: srv.Addr().String(), pace: pace, rng: rand.New(rand.NewPCG(o.seed, 0x64656d6f)), faults: d,
		say: func(line string) { out.Emit(demoNote(line)) }}
	if model != nil {
		s.say = func(line string) { model.SetStatus("demo: " + line) }
		act := &proxyActions{srv: srv, in: in, set: live, ic: ic, async: func(f func()) { go f() }}
		err = runDemoUI(ctx, o, model, act, s)
	} else {
		fmt.Fprintf(o.io.Err, "mqscope: demo: the proxy listens on %s in front of the embedded broker; the story runs for up to %v\n", srv.Addr(), o.duration)
		err = runDemoHeadless(ctx, o, s)
	}

	shctx, shcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer shcancel()
	serr := srv.Shutdown(shctx)
	if e := <-served; serr == nil {
		serr = e
	}
	if cerr := out.Close(); serr == nil {
		serr = cerr
	}
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return serr
}

// demoUIPace is the pause between the story's steps in the UI, to watch them.
const demoUIPace = 1500 * time.Millisecond

// runDemoHeadless tells the story once, within --duration.
func runDemoHeadless(ctx context.Context, o *demoOptions, s *demoStory) error {
	sctx, cancel := context.WithTimeout(ctx, o.duration)
	err := s.run(sctx)
	cancel()
	s.closeAll()
	switch {
	case err == nil:
		s.say("the story is over")
	case sctx.Err() != nil && ctx.Err() == nil:
		s.say(fmt.Sprintf("time is up (--duration %v): the story stopped there", o.duration))
		err = nil
	case ctx.Err() != nil:
		err = nil // interrupted
	}
	return err
}

// runDemoUI tells the story again and again in the terminal UI until the user quits.
func runDemoUI(ctx context.Context, o *demoOptions, m *ui.Model, act ui.Actions, s *demoStory) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	uopts := ui.Options{Source: "demo (? lists the keys, ! injects a fault, i intercepts, q quits)", Live: true,
		NoColor: !o.io.Color.colorForScreen()}
	if o.drawn != nil {
		uopts.AfterDraw = func(*ui.UI) { o.drawn() }
	}
	u := ui.New(m, act, uopts)
	m.SetStatus("demo: the devices connect; their packets appear as they go (G follows them)")
	told := make(chan struct{})
	go func() {
		defer close(told)
		tellAgain(ctx, func(ctx context.Context) error {
			err := s.run(ctx)
			s.closeAll()
			return err
		}, s.say, s.pause)
	}()
	err := u.Run(ctx, o.screen)
	cancel()
	<-told
	return err
}

// tellAgain tells the story (run) again and again, a pause between, until ctx is done. A
// story that fails (a device the user's own fault cut off, say) is said to have stopped, and
// why, and begins again like one that ended.
func tellAgain(ctx context.Context, run func(context.Context) error, say func(string), pause func(context.Context) error) {
	for {
		err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			say("the story stopped: " + err.Error() + "; it begins again")
		} else {
			say("the story is over; it begins again")
		}
		if pause(ctx) != nil {
			return
		}
	}
}

// demoLog reports what is not part of a connection, except the embedded broker's complaints
// about the packets the faults altered, which the records show (a DISCONNECT 0x94 and its cause).
func demoLog(w io.Writer) func(string, ...any) {
	logf := stderrLog(w)
	return func(format string, args ...any) {
		if line := fmt.Sprintf(format, args...); !strings.HasPrefix(line, "embedded broker:") {
			logf("%s", line)
		}
	}
}

// demoNote is a line of the story told between the records (what a device does, a fault).
type demoNote string

func (demoNote) Kind() string { return "demo" }

// storyWriter writes the records with a writer of records and the story's lines between them,
// in the order they were emitted.
type storyWriter struct {
	inspect.Writer
	w io.Writer
}

func (s *storyWriter) Write(r inspect.Record) error {
	n, ok := r.(demoNote)
	if !ok {
		return s.Writer.Write(r)
	}
	if err := s.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(s.w, "demo: %s\n", string(n))
	return err
}

func (s *storyWriter) Flush() error {
	if f, ok := s.Writer.(inspect.Flusher); ok {
		return f.Flush()
	}
	return nil
}

// demoFaultSet is the demo's faults, each a fault.Set of its own behind a switch the story
// turns on just before the step that meets it.
type demoFaultSet struct {
	faults []*armedFault
}

type armedFault struct {
	name    string
	set     *fault.Set
	armed   atomic.Bool
	applied chan fault.Applied // one report per arming
}

func newDemoFaults() (*demoFaultSet, error) {
	d := &demoFaultSet{}
	for _, df := range demoFaults {
		r, err := fault.Parse(df.rule, 1)
		if err != nil {
			return nil, fmt.Errorf("demo fault %s: %w", df.name, err)
		}
		af := &armedFault{name: df.name, applied: make(chan fault.Applied, 1)}
		// What the fault did is a record of the timeline; the report disarms it.
		af.set = &fault.Set{Rules: []*fault.Rule{r}, Report: func(a fault.Applied) {
			af.armed.Store(false)
			select {
			case af.applied <- a:
			default:
			}
		}}
		d.faults = append(d.faults, af)
	}
	return d, nil
}

func (d *demoFaultSet) stages(c *stream.Conn, dir stream.Dir, env proxy.StageEnv) []proxy.Stage {
	var out []proxy.Stage
	for _, af := range d.faults {
		for _, st := range af.set.Stages(c, dir, env) {
			out = append(out, armedStage{af: af, Stage: st})
		}
	}
	return out
}

func (d *demoFaultSet) arm(name string) *armedFault {
	for _, af := range d.faults {
		if af.name == name {
			select { // a report left from an arming that was not waited for
			case <-af.applied:
			default:
			}
			af.armed.Store(true)
			return af
		}
	}
	panic("demo: no fault " + name)
}

// armedStage applies its fault only while armed.
type armedStage struct {
	af *armedFault
	proxy.Stage
}

func (s armedStage) Frame(f *proxy.Frame, emit func([]byte) error) error {
	// The fault's selectors need the client identifier: its stage sees every CONNECT.
	if !s.af.armed.Load() && f.Type != decode.CONNECT {
		return emit(f.Bytes)
	}
	return s.Stage.Frame(f, emit)
}

// demoStory is the devices' script.
type demoStory struct {
	addr   string
	pace   time.Duration
	rng    *rand.Rand
	faults *demoFaultSet
	say    func(string)

	dash, svc, s1, s2 *device // the cast, as the acts leave them

	mu      sync.Mutex
	devices []*device // to close at the end
}

func (s *demoStory) pause(ctx context.Context) error {
	t := time.NewTimer(s.pace)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *demoStory) dial(ctx context.Context, c *decode.Connect, onPublish func(*decode.Publish)) (*device, error) {
	d, _, err := dialDevice(ctx, s.addr, c, onPublish)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.devices = append(s.devices, d)
	s.mu.Unlock()
	return d, nil
}

// closeAll disconnects the devices still connected (when the story stopped early).
func (s *demoStory) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		select {
		case <-d.done:
		default:
			d.disconnect()
		}
	}
}

// The devices' CONNECTs.

func dashboardConnect() *decode.Connect {
	return &decode.Connect{ClientID: "dashboard", CleanStart: true, KeepAlive: 60,
		Properties: decode.Properties{decode.IntProp(decode.PropReceiveMaximum, 10), decode.IntProp(decode.PropTopicAliasMaximum, 4)}}
}

func serviceConnect() *decode.Connect {
	return &decode.Connect{ClientID: "service", CleanStart: true, KeepAlive: 60}
}

func sensor1Connect(clean bool) *decode.Connect {
	return &decode.Connect{ClientID: "sensor-1", CleanStart: clean, KeepAlive: 30,
		Properties: decode.Properties{decode.IntProp(decode.PropSessionExpiry, 60), decode.IntProp(decode.PropReceiveMaximum, 5),
			decode.IntProp(decode.PropMaximumPacketSize, 512), decode.UserProp("fw", "1.4.2")},
		Will: &decode.WillMessage{QoS: 1, Retain: true, Topic: "demo/status/sensor-1", Payload: []byte("offline"),
			Properties: decode.Properties{decode.IntProp(decode.PropPayloadFormat, 1)}}}
}

func sensor2Connect() *decode.Connect {
	return &decode.Connect{ClientID: "sensor-2", CleanStart: true, KeepAlive: 30}
}

func (s *demoStory) reading(min, spread float64) string {
	return fmt.Sprintf("%.1f", min+s.rng.Float64()*spread)
}

// run tells the story; it returns when it is over, or ctx is done.
func (s *demoStory) run(ctx context.Context) error {
	steps := []func(context.Context) error{s.actSetUp, s.actTelemetry, s.actRequest, s.actOversize, s.actAliasOverflow, s.actServerBusy, s.actWill}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
	return nil
}

// actSetUp connects the dashboard, the service and sensor-1.
func (s *demoStory) actSetUp(ctx context.Context) error {
	var err error
	s.say("dashboard connects (Receive Maximum 10, Topic Alias Maximum 4) and subscribes to demo/# at QoS 2 with Subscription Identifier 1")
	if s.dash, err = s.dial(ctx, dashboardConnect(), nil); err != nil {
		return err
	}
	if err := s.dash.subscribe("demo/#", 2, 1); err != nil {
		return err
	}
	if err := s.pause(ctx); err != nil {
		return err
	}
	s.say("service connects and answers requests on demo/req/+ to their Response Topic, with their Correlation Data")
	if s.svc, err = s.dial(ctx, serviceConnect(), s.answer); err != nil {
		return err
	}
	if err := s.svc.subscribe("demo/req/+", 1, 0); err != nil {
		return err
	}
	if err := s.pause(ctx); err != nil {
		return err
	}
	s.say("sensor-1 connects: a retained Will (demo/status/sensor-1 \"offline\"), Maximum Packet Size 512, session kept 60 s, user property fw=1.4.2")
	if err := s.connectSensor1(ctx, true); err != nil {
		return err
	}
	s.say("sensor-1 says it is online: a retained QoS 1 PUBLISH")
	return s.s1.publish(&decode.Publish{QoS: 1, Retain: true, Topic: "demo/status/sensor-1", Payload: []byte("online"),
		Properties: decode.Properties{decode.IntProp(decode.PropPayloadFormat, 1)}})
}

func (s *demoStory) connectSensor1(ctx context.Context, clean bool) error {
	var err error
	if s.s1, err = s.dial(ctx, sensor1Connect(clean), nil); err != nil {
		return err
	}
	if !clean {
		// The resumed session's unacknowledged command comes again first: the device has
		// acknowledged it once the script sees it, before its SUBSCRIBE (whose identifier the
		// broker would otherwise count against that PUBLISH: SUBACK 0x91, in a third of runs).
		_, err := s.s1.expect(func(p decode.Packet) bool {
			q, ok := p.(*decode.Publish)
			return ok && q.Dup && q.Topic == "demo/cmd/sensor-1"
		})
		if err != nil {
			return fmt.Errorf("the resumed session's command: %w", err)
		}
	}
	if err := s.s1.subscribe("demo/cmd/sensor-1", 1, 0); err != nil {
		return err
	}
	return s.s1.subscribe("demo/resp/sensor-1", 1, 0)
}

// answer is the service's reaction to a request: a PUBLISH to its Response Topic with its
// Correlation Data (QoS 0: it is sent from the service's reader, which cannot wait for acks).
func (s *demoStory) answer(p *decode.Publish) {
	rt, ok := p.Properties.String(decode.PropResponseTopic)
	if !ok {
		return
	}
	props := decode.Properties{decode.StrProp(decode.PropContentType, "application/json")}
	if cd, ok := p.Properties.Binary(decode.PropCorrelationData); ok {
		props = append(props, decode.BinProp(decode.PropCorrelationData, cd))
	}
	s.svc.send(&decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: rt, Properties: props,
		Payload: []byte(`{"interval_s":30,"unit":"C"}`)})
}

// actTelemetry: topic aliases, user properties, QoS 2.
func (s *demoStory) actTelemetry(ctx context.Context) error {
	if err := s.pause(ctx); err != nil {
		return err
	}
	if err := s.temperature(ctx, "demo/sensor-1/temp", "sensor-1 sends a temperature with Topic Alias 1 (topic and alias: the alias is mapped), user property unit=C"); err != nil {
		return err
	}
	if err := s.temperature(ctx, "", "sensor-1 sends the next one by Topic Alias 1 alone (no topic)"); err != nil {
		return err
	}
	s.say("sensor-1 raises an alarm at QoS 2: PUBREC, PUBREL, PUBCOMP")
	return s.s1.publish(&decode.Publish{QoS: 2, Topic: "demo/sensor-1/alarm", Payload: []byte(`{"over_temp":` + s.reading(60, 10) + `}`)})
}

// temperature has sensor-1 publish a reading at QoS 0 with Topic Alias 1 and topic (none: the
// alias alone), waits for the dashboard to get it (at QoS 0 nothing else answers), and pauses.
func (s *demoStory) temperature(ctx context.Context, topic, sentence string) error {
	s.say(sentence)
	v := s.reading(19, 4)
	err := s.s1.publish(&decode.Publish{Topic: topic, Payload: []byte(v),
		Properties: decode.Properties{decode.IntProp(decode.PropTopicAlias, 1), decode.UserProp("unit", "C")}})
	if err != nil {
		return err
	}
	if err := s.dash.expectPublish("demo/sensor-1/temp", v); err != nil {
		return err
	}
	return s.pause(ctx)
}

// actRequest: request and response.
func (s *demoStory) actRequest(ctx context.Context) error {
	if err := s.pause(ctx); err != nil {
		return err
	}
	cd := fmt.Sprintf("cfg-%04d", s.rng.IntN(10000))
	s.say(fmt.Sprintf("sensor-1 asks the service for its configuration: Response Topic demo/resp/sensor-1, Correlation Data %q", cd))
	err := s.s1.publish(&decode.Publish{QoS: 1, Topic: "demo/req/config", Payload: []byte(`{"want":"config"}`),
		Properties: decode.Properties{decode.StrProp(decode.PropResponseTopic, "demo/resp/sensor-1"), decode.BinProp(decode.PropCorrelationData, []byte(cd))}})
	if err != nil {
		return err
	}
	_, err = s.s1.expect(func(p decode.Packet) bool {
		q, ok := p.(*decode.Publish)
		got, _ := q.Properties.Binary(decode.PropCorrelationData)
		return ok && string(got) == cd
	})
	if err != nil {
		return fmt.Errorf("waiting for the response: %w", err)
	}
	return nil
}

// actOversize: the proxy grows a command to sensor-1 over its Maximum Packet Size; sensor-1
// refuses it with DISCONNECT 0x95 and reconnects to its session.
func (s *demoStory) actOversize(ctx context.Context) error {
	if err := s.pause(ctx); err != nil {
		return err
	}
	err := s.meet(ctx, "oversize", "fault armed: the proxy grows the next command to sensor-1 to its Maximum Packet Size + 1", s.s1, func() error {
		return s.svc.publish(&decode.Publish{QoS: 1, Topic: "demo/cmd/sensor-1", Payload: []byte(`{"cmd":"report"}`)})
	})
	if err != nil {
		return err
	}
	s.say("sensor-1 reconnects to its session (Clean Start 0)")
	return s.connectSensor1(ctx, false)
}

// actAliasOverflow: the proxy gives sensor-2's PUBLISH an alias over the broker's maximum; the
// broker answers DISCONNECT 0x94; sensor-2 reconnects.
func (s *demoStory) actAliasOverflow(ctx context.Context) error {
	if err := s.pause(ctx); err != nil {
		return err
	}
	var err error
	s.say(fmt.Sprintf("sensor-2 connects; the broker allows %d topic aliases", demoBroker.TopicAliasMaximum))
	if s.s2, err = s.dial(ctx, sensor2Connect(), nil); err != nil {
		return err
	}
	if err := s.pause(ctx); err != nil {
		return err
	}
	err = s.meet(ctx, "alias-overflow", "fault armed: the proxy gives sensor-2's next PUBLISH Topic Alias topic_alias_maximum+1", s.s2, func() error {
		return s.s2.publish(&decode.Publish{Topic: "demo/sensor-2/humidity", Payload: []byte(s.reading(40, 20))})
	})
	if err != nil {
		return err
	}
	return s.rejoinSensor2(ctx, "sensor-2 reconnects and publishes without the alias")
}

// actServerBusy: after the broker's PUBACK the proxy sends sensor-2 DISCONNECT 0x89; sensor-2
// backs off and reconnects.
func (s *demoStory) actServerBusy(ctx context.Context) error {
	if err := s.pause(ctx); err != nil {
		return err
	}
	err := s.meet(ctx, "server-busy", "fault armed: after the broker's next PUBACK to sensor-2 the proxy sends it DISCONNECT 0x89 Server busy", s.s2, func() error {
		return s.s2.publish(&decode.Publish{QoS: 1, Topic: "demo/sensor-2/humidity", Payload: []byte(s.reading(40, 20))})
	})
	if err != nil {
		return err
	}
	return s.rejoinSensor2(ctx, "sensor-2 backed off; it reconnects")
}

// meet arms a fault, says so, does what meets it, and waits for the fault to be applied and
// for d's connection to end (d's reaction, or its peer's), then pauses.
func (s *demoStory) meet(ctx context.Context, name, sentence string, d *device, act func() error) error {
	af := s.faults.arm(name)
	s.say(sentence)
	if err := act(); err != nil {
		return err
	}
	if err := waitApplied(ctx, af); err != nil {
		return err
	}
	d.waitEnd()
	return s.pause(ctx)
}

// rejoinSensor2 connects sensor-2 again and has it publish at QoS 1.
func (s *demoStory) rejoinSensor2(ctx context.Context, sentence string) error {
	var err error
	s.say(sentence)
	if s.s2, err = s.dial(ctx, sensor2Connect(), nil); err != nil {
		return err
	}
	return s.s2.publish(&decode.Publish{QoS: 1, Topic: "demo/sensor-2/humidity", Payload: []byte(s.reading(40, 20))})
}

// actWill: sensor-1 vanishes; the broker publishes its Will; everyone else leaves properly.
func (s *demoStory) actWill(ctx context.Context) error {
	if err := s.pause(ctx); err != nil {
		return err
	}
	s.say("sensor-1 loses power (no DISCONNECT): the broker publishes its Will to the dashboard")
	s.s1.drop()
	if err := s.dash.expectPublish("demo/status/sensor-1", "offline"); err != nil {
		return fmt.Errorf("sensor-1's Will: %w", err)
	}
	if err := s.pause(ctx); err != nil {
		return err
	}
	s.say("the other devices disconnect")
	for _, d := range []*device{s.s2, s.svc, s.dash} {
		if err := d.disconnect(); err != nil {
			return err
		}
	}
	return nil
}

// waitApplied waits for the armed fault to be applied.
func waitApplied(ctx context.Context, af *armedFault) error {
	t := time.NewTimer(demoTimeout)
	defer t.Stop()
	select {
	case <-af.applied:
		return nil
	case <-t.C:
		return fmt.Errorf("fault %s was not applied within %v", af.name, demoTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}
