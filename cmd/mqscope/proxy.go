package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/inspect/payload"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/proxy/fault"
	"github.com/mqscope/mqscope/stream"
	"github.com/mqscope/mqscope/ui"
	"github.com/spf13/cobra"
)

// proxyOptions are the options of mqscope proxy.
type proxyOptions struct {
	io *streams

	listen, upstream string
	api, apiToken    string
	record           string
	recordTLS        string
	wire             *pcapng.WireRecorder // --record-tls, once config made it

	format, filter, profile, payload string
	summary, showSecrets, quiet      bool
	maxFrame, bufferSize, version    int
	maxConns, maxBuffered            int
	connectTimeout                   time.Duration

	// Device-facing TLS: a given certificate, or one minted by the mqscope CA.
	cert, key, caDir string
	// Broker-facing TLS.
	upstreamCA, upstreamCert, upstreamKey, sni string
	insecure                                   bool
	keylog                                     string

	faults     []string // fault rules (proxy/fault grammar)
	faultsFile string   // --faults: a YAML file of rules
	faultSeed  uint64
	set        *fault.Set // the rules, once config made them
	// ic holds the frames matching its filter (the control API's /intercept, the UI's i);
	// nil without --api or --ui.
	ic *proxy.Intercept

	ui uiOptions // --ui, --readonly

	transparentShutdown bool
	shutdownTimeout     time.Duration
	cpuProfile          string

	// started, when set, is called once the proxy listens (tests use it to find the ports).
	started func(srv *proxy.Server, api net.Addr)
}

func newProxyCmd(io *streams) *cobra.Command {
	o := &proxyOptions{io: io}
	cmd := &cobra.Command{
		Use:   "proxy --upstream ADDR",
		Short: "Sit between a device and its broker and show every packet live",
		Long: `Listen for MQTT connections, open one to the broker for each, and forward every byte
unchanged while printing what each packet means and every rule a peer broke.

Addresses are host:port for TCP, or tls://, ws://host:port/path and wss://host:port/path;
each side chooses independently, so a WebSocket device can talk to a TCP broker and the
other way round. --upstream embedded starts an in-process MQTT 5 broker.

Device-facing TLS (--listen tls://... or wss://...) uses --cert and --key, or else a
certificate minted for the name the device asks for by the CA of 'mqscope ca init'.
Broker-facing TLS verifies the broker (system roots or --upstream-ca) unless --insecure.

When the broker cannot be reached, the device gets CONNACK Server unavailable (0x88, or
return code 3 in MQTT 3.1.1). On SIGINT or SIGTERM the proxy stops accepting, sends MQTT 5
devices DISCONNECT 0x8B Server shutting down (unless --transparent-shutdown), and flushes
its output and recording.

--fault RULE (repeatable) alters what goes through, and --faults FILE gives rules in YAML
(faults: [RULE or {action: NAME, KEY: VALUE...}]); with --api, rules are listed, added and
removed at run time (/faults, /connections/{id}/faults). Each fault applied is a record
right before the frame it altered (kind "fault" in JSON lines: the rule, what was done, the
bytes before and after, the negotiated value used), and a comment on that frame in --record;
with --quiet or --summary, a line on stderr. Without rules or --api every byte is forwarded
unchanged, unframed.

` + fault.Usage(),
		Example: `  mqscope proxy --upstream embedded
  mqscope proxy --listen 127.0.0.1:1884 --upstream broker.example.com:1883
  mqscope proxy --listen tls://0.0.0.0:8883 --upstream tls://broker.example.com:8883 --keylog keys.txt
  mqscope proxy --listen ws://127.0.0.1:8080/mqtt --upstream 127.0.0.1:1883 --format jsonl
  mqscope proxy --upstream embedded --api 127.0.0.1:9090 --record session.pcapng
  mqscope proxy --upstream 127.0.0.1:1883 --fault 'oversize dir=c2s size=max_packet_size+1 count=1'
  mqscope proxy --upstream 127.0.0.1:1883 --fault 'drop type=PUBACK dir=s2c count=1'
  mqscope proxy --upstream 127.0.0.1:1883 --fault 'disconnect dir=s2c reason=0x89 after=PUBLISH'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.ui.on {
				if err := checkUI(cmd); err != nil {
					return err
				}
				if o.quiet {
					return usageError{errors.New("--quiet is for printed output, not for the UI")}
				}
			} else if o.ui.readonly {
				return usageError{errors.New("--readonly goes with --ui")}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runProxy(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:1884", "where devices connect: `ADDR` (host:port, tls://, ws://, wss://)")
	f.StringVar(&o.upstream, "upstream", "", "the broker: `ADDR` (host:port, tls://, ws://, wss://) or \"embedded\"")
	f.StringVar(&o.api, "api", "", "serve the control API (HTTP, JSON, /metrics) on `ADDR`")
	f.StringVar(&o.apiToken, "api-token", "", "the control API's bearer `TOKEN` (default: $MQSCOPE_API_TOKEN, else a random one, printed)")
	f.StringVar(&o.record, "record", "", "record the session to pcapng `FILE`")
	f.StringVar(&o.recordTLS, "record-tls", "", "record the devices' TLS connections as on the wire, their secrets embedded, to pcapng `FILE` (needs a tls:// or wss:// --listen)")
	f.StringVar(&o.format, "format", "text", "output format: text or jsonl")
	f.BoolVar(&o.summary, "summary", false, "print one summary per connection as it closes instead of every packet (with --format jsonl: the session and close records, as they come)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print no records (use with --api or --record)")
	f.StringVar(&o.profile, "profile", "", "check against a broker profile: a built-in `NAME` (spec, apsaramq) or a YAML file; with --upstream embedded the broker also grants and enforces its limits")
	f.StringVar(&o.filter, "filter", "", "only print packets matching `EXPR` (e.g. 'type == \"PUBLISH\" && qos > 0')")
	f.StringVar(&o.payload, "payload", "preview", "payloads shown: none, preview or full")
	f.BoolVar(&o.showSecrets, "show-secrets", false, "print passwords instead of redacting them")
	versionFlag(f, &o.version, versionUsage)
	f.IntVar(&o.maxFrame, "max-frame", 1<<20, "inspect frames up to `BYTES` (bigger ones are forwarded but not decoded)")
	f.IntVar(&o.bufferSize, "buffer", 16<<10, "read buffer of each direction in `BYTES` (pooled: idle TCP connections hold none)")
	f.IntVar(&o.maxConns, "max-conns", 0, "close new connections at once while `N` are open (0: no limit)")
	f.IntVar(&o.maxBuffered, "max-buffered", 64<<20, "close the connection holding the most unfinished frames when all together hold over `BYTES`")
	f.DurationVar(&o.connectTimeout, "connect-timeout", 10*time.Second, "close a device that sends no CONNECT within `DURATION`")
	f.StringVar(&o.cert, "cert", "", "device-facing TLS certificate `FILE` (PEM, chain included)")
	f.StringVar(&o.key, "key", "", "device-facing TLS private key `FILE` (PEM)")
	f.StringVar(&o.caDir, "ca-dir", "", "the mqscope CA's `DIR` (default: where 'mqscope ca init' puts it)")
	f.StringVar(&o.upstreamCA, "upstream-ca", "", "verify the broker with the CA certificates in `FILE` (PEM)")
	f.StringVar(&o.upstreamCert, "upstream-cert", "", "client certificate `FILE` for brokers that want mutual TLS")
	f.StringVar(&o.upstreamKey, "upstream-key", "", "private key `FILE` of --upstream-cert")
	f.StringVar(&o.sni, "sni", "", "server `NAME` sent to and verified on the broker (default: the host of --upstream)")
	f.BoolVar(&o.insecure, "insecure", false, "do not verify the broker's certificate")
	f.StringVar(&o.keylog, "keylog", "", "append TLS secrets of both sides to `FILE` (NSS key log format, for Wireshark)")
	f.StringArrayVar(&o.faults, "fault", nil, "inject a fault: `RULE` such as 'drop type=PUBACK dir=s2c count=1' (repeatable; grammar above)")
	f.StringVar(&o.faultsFile, "faults", "", "inject the fault rules of YAML `FILE` (faults: [...]; with --fault: the file's rules first)")
	f.Uint64Var(&o.faultSeed, "fault-seed", 0, "seed the random source of prob= with `N`, so that a run repeats (default: from the clock)")
	f.BoolVar(&o.transparentShutdown, "transparent-shutdown", false, "on exit, close connections without sending DISCONNECT 0x8B")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 5*time.Second, "how long to wait for connections to end on exit")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the proxy to `FILE`")
	_ = f.MarkHidden("cpuprofile")
	o.ui.addFlags(f, true)
	f.BoolVar(&o.ui.readonly, "readonly", false, "with --ui: only watch (no faults, DISCONNECT, reset or intercept from the UI)")
	completeOutputFlags(cmd)
	return cmd
}

// config turns the options into the proxy's configuration (without observers).
func (o *proxyOptions) config() (proxy.Config, []io.Closer, error) {
	var cfg proxy.Config
	var closers []io.Closer
	fail := func(err error) (proxy.Config, []io.Closer, error) {
		for _, c := range closers {
			c.Close()
		}
		return proxy.Config{}, nil, err
	}
	if o.upstream == "" {
		return fail(usageError{errors.New("--upstream is required (an address, or \"embedded\")")})
	}
	if err := checkVersion(o.version); err != nil {
		return fail(err)
	}
	if o.format != "text" && o.format != "jsonl" {
		return fail(usageError{fmt.Errorf("--format %q: want text or jsonl", o.format)})
	}
	if _, err := payload.ParseMode(o.payload); err != nil {
		return fail(usageError{fmt.Errorf("--payload: %w", err)})
	}
	l, err := proxy.ParseEndpoint(o.listen, "127.0.0.1")
	if err != nil {
		return fail(usageError{fmt.Errorf("--listen: %w", err)})
	}
	cfg.Listen = l
	if o.upstream == "embedded" {
		cfg.Embedded = true
	} else {
		u, err := proxy.ParseEndpoint(o.upstream, "127.0.0.1")
		if err != nil {
			return fail(usageError{fmt.Errorf("--upstream: %w", err)})
		}
		cfg.Upstream = u
	}
	if (o.cert == "") != (o.key == "") {
		return fail(usageError{errors.New("--cert and --key go together")})
	}
	if (o.upstreamCert == "") != (o.upstreamKey == "") {
		return fail(usageError{errors.New("--upstream-cert and --upstream-key go together")})
	}
	if o.bufferSize < 512 || o.bufferSize > 1<<20 {
		return fail(usageError{fmt.Errorf("--buffer %d: want 512 to 1048576", o.bufferSize)})
	}
	cfg.BufferSize = o.bufferSize
	if o.maxConns < 0 || o.maxBuffered < 0 || o.connectTimeout < 0 {
		return fail(usageError{errors.New("--max-conns, --max-buffered and --connect-timeout cannot be negative")})
	}
	cfg.MaxConns, cfg.MaxBuffered, cfg.ConnectTimeout = o.maxConns, o.maxBuffered, o.connectTimeout
	cfg.BufferedFrameMax = o.maxFrame
	cfg.TransparentShutdown = o.transparentShutdown
	// With the control API, every connection gets the fault stage, so rules added at run time
	// (POST /faults) apply to connections open already.
	// So does the UI's fault palette, unless --readonly.
	acting := o.api != "" || o.ui.on && !o.ui.readonly
	if len(o.faults) > 0 || o.faultsFile != "" || acting {
		var rules []*fault.Rule
		if o.faultsFile != "" {
			if rules, err = fault.LoadFile(o.faultsFile); err != nil {
				return fail(usageError{fmt.Errorf("--faults: %w", err)})
			}
		}
		more, err := fault.ParseAll(o.faults)
		if err != nil {
			return fail(usageError{fmt.Errorf("--fault: %w", err)})
		}
		if rules = append(rules, more...); fault.Number(rules) != nil {
			return fail(usageError{fmt.Errorf("--fault, --faults: %w", fault.Number(rules))})
		}
		broker := cfg.Upstream.Transport
		if cfg.Embedded {
			broker = stream.Memory
		}
		if err := fault.CheckTransports(rules, cfg.Listen.Transport, broker); err != nil {
			return fail(usageError{fmt.Errorf("--fault, --faults: %w", err)})
		}
		o.set = &fault.Set{Rules: rules, Live: acting, Device: cfg.Listen.Transport, Broker: broker}
		if o.quiet || o.summary {
			o.set.Report = faultReporter(o.io.Err) // the records that show faults are not printed
		}
		cfg.Stages = o.set.Stages
		if acting {
			// The intercept comes last: what it holds is what would be sent.
			o.ic = proxy.NewIntercept()
			o.ic.ShowSecrets = o.showSecrets
			cfg.Stages = chainStages(o.set.Stages, o.ic.Stages)
		}
		if o.faultSeed != 0 {
			cfg.Rand = rand.New(rand.NewPCG(o.faultSeed, 0x6d71))
		}
	}

	var keylog io.Writer
	if o.keylog != "" {
		f, err := createPrivate(o.keylog, true, o.io.Err)
		if err != nil {
			return fail(fmt.Errorf("--keylog: %w", err))
		}
		closers = append(closers, f)
		keylog = f
	}
	if l.Secure() {
		var tc *tls.Config
		if o.cert != "" {
			pair, err := tls.LoadX509KeyPair(o.cert, o.key)
			if err != nil {
				return fail(fmt.Errorf("--cert/--key: %w", err))
			}
			tc = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		} else {
			dir := o.caDir
			if dir == "" {
				if dir, err = proxy.DefaultCADir(); err != nil {
					return fail(err)
				}
			}
			ca, err := proxy.LoadCA(dir)
			if err != nil {
				return fail(err)
			}
			tc = ca.ServerConfig(l.Host())
		}
		tc.KeyLogWriter = keylog
		if o.recordTLS != "" {
			// The recording holds the secrets that decrypt it: 0600.
			if err := makePrivate(o.recordTLS, o.io.Err); err != nil {
				return fail(fmt.Errorf("--record-tls: %w", err))
			}
			wire, err := pcapng.NewWireRecorder(o.recordTLS)
			if err != nil {
				return fail(fmt.Errorf("--record-tls: %w", err))
			}
			o.wire, cfg.Tap = wire, wire.Wrap
			if keylog != nil {
				tc.KeyLogWriter = io.MultiWriter(keylog, wire.KeyLog())
			} else {
				tc.KeyLogWriter = wire.KeyLog()
			}
		}
		cfg.ListenTLS = tc
	} else if o.recordTLS != "" {
		return fail(usageError{errors.New("--record-tls needs a tls:// or wss:// --listen address")})
	} else if o.cert != "" {
		return fail(usageError{errors.New("--cert needs a tls:// or wss:// --listen address")})
	}
	if cfg.Upstream.Secure() {
		tc, err := clientTLSConfig(o.upstreamCA, o.upstreamCert, o.upstreamKey, o.sni, o.insecure, keylog)
		if err != nil {
			return fail(fmt.Errorf("--upstream-ca/--upstream-cert: %w", err))
		}
		cfg.UpstreamTLS = tc
	} else if o.upstreamCA != "" || o.upstreamCert != "" || o.insecure || o.sni != "" {
		return fail(usageError{errors.New("--upstream-ca, --upstream-cert, --insecure and --sni need a tls:// or wss:// --upstream")})
	}
	return cfg, closers, nil
}

func runProxy(ctx context.Context, o *proxyOptions) (err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg, closers, err := o.config()
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range closers {
			if cerr := c.Close(); err == nil {
				err = cerr
			}
		}
	}()
	if o.cpuProfile != "" {
		pf, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return err
		}
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}
	if o.insecure {
		fmt.Fprintln(o.io.Err, "mqscope: warning: --insecure: the broker's certificate is not verified, so anyone on the way can pose as the broker and read what devices send, passwords included")
	}
	if o.keylog != "" {
		fmt.Fprintf(o.io.Err, "mqscope: warning: --keylog: the TLS secrets of every connection go to %s; whoever can read it can decrypt the traffic, passwords included\n", o.keylog)
	}
	if o.wire != nil {
		fmt.Fprintf(o.io.Err, "mqscope: warning: --record-tls: %s will hold the TLS secrets of the devices' connections beside their bytes; whoever can read it can decrypt them, passwords included\n", o.recordTLS)
	}
	if !cfg.Embedded {
		warnUnresolved(ctx, o.io.Err, cfg.Upstream.Host())
	}
	mode, _ := payload.ParseMode(o.payload)
	// One session registry for all connections: a takeover is explained on both of them.
	iopts := inspect.Options{ShowSecrets: o.showSecrets, Payload: mode, MaxFrame: o.maxFrame, Version: decode.Version(o.version), Sessions: inspect.NewSessions()}
	if o.profile != "" {
		p, err := inspect.LoadProfile(o.profile)
		if err != nil {
			return usageError{fmt.Errorf("--profile: %w", err)}
		}
		iopts.Profile = p
		if cfg.Embedded {
			cfg.EmbeddedProfile = p // the embedded broker grants and enforces it
		}
	}
	var filter *inspect.Filter
	if o.filter != "" {
		if filter, err = inspect.CompileFilter(o.filter); err != nil {
			return usageError{fmt.Errorf("--filter: %w", err)}
		}
	}
	var w inspect.Writer
	var model *ui.Model
	logf := stderrLog(o.io.Err)
	if o.ui.on {
		// The screens show the records, filtered by the view (/ changes it), and say on the
		// status line what would be printed on stderr.
		model = ui.NewModel(o.ui.maxPackets)
		model.SetView(0, filter)
		filter = nil
		w = modelWriter{model}
		logf = func(format string, args ...any) { model.SetStatus(fmt.Sprintf(format, args...)) }
		if o.set != nil {
			o.set.Report = func(a fault.Applied) { model.SetStatus(a.String()) }
		}
	} else if !o.quiet {
		topts := inspect.TextOptions{Color: o.io.Color.colorFor(o.io.Out), Payload: mode, ShowSecrets: o.showSecrets}
		switch {
		case o.format == "jsonl":
			w = inspect.NewJSONWriter(o.io.Out, inspect.JSONOptions{Payload: mode, ShowSecrets: o.showSecrets, Connections: o.summary})
		case o.summary:
			w = inspect.NewLiveSummaryWriter(o.io.Out, topts)
		default:
			w = inspect.NewTextWriter(o.io.Out, topts)
		}
	}
	metrics := proxy.NewMetrics()
	var hub *inspect.Hub
	if o.api != "" {
		hub = inspect.NewHub(inspect.JSONOptions{Payload: mode, ShowSecrets: o.showSecrets})
	}
	var drops inspect.Drops = metrics
	if model != nil {
		drops = model.Drops(metrics) // the header says what the screens did not get
	}
	out := inspect.NewOutput(w, filter, hub, drops, 1<<16)
	in := proxy.NewInspector(iopts, out, metrics)
	cfg.Metrics = metrics
	cfg.Observers = []stream.Observer{in}
	cfg.Logf = logf
	if o.record != "" {
		// The recording holds the CONNECTs with their passwords, decrypted: 0600.
		if err := makePrivate(o.record, o.io.Err); err != nil {
			out.Close()
			return fmt.Errorf("--record: %w", err)
		}
		listen, _ := netip.ParseAddrPort(cfg.Listen.Addr) // stands for the broker when its address is unknown
		rec, err := pcapng.NewRecorder(o.record, listen, logf)
		if err != nil {
			out.Close()
			return err
		}
		cfg.Observers = append(cfg.Observers, rec)
	}

	srv, err := proxy.New(cfg)
	if err != nil {
		out.Close()
		for _, ob := range cfg.Observers {
			if f, ok := ob.(stream.Flusher); ok {
				f.Flush()
			}
		}
		return err
	}
	var apiAddr net.Addr
	var apiToken string
	var apiSrv *http.Server
	if o.api != "" {
		addr := defaultLoopback(o.api)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			srv.Shutdown(context.Background())
			return fmt.Errorf("--api: %w", err)
		}
		apiAddr = ln.Addr()
		token, given := o.apiToken, "--api-token"
		if token == "" {
			token, given = os.Getenv("MQSCOPE_API_TOKEN"), "$MQSCOPE_API_TOKEN"
		}
		api := proxy.NewAPI(srv, in, hub, proxy.APIConfig{Token: token, Listen: addr})
		o.set.Register(api)
		o.ic.Routes(api)
		apiSrv = &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
		go apiSrv.Serve(ln)
		apiToken = "TOKEN (" + given + ")"
		if token == "" {
			apiToken = api.Token()
		}
	}
	up := srv.Upstream().String()
	if cfg.Embedded {
		up = "the embedded broker (in this process; nothing listens for it)"
	}
	fmt.Fprintf(o.io.Err, "mqscope: proxying %s -> %s\n", endpointOf(cfg.Listen, srv.Addr()), up)
	if apiAddr != nil {
		fmt.Fprintf(o.io.Err, "mqscope: control API on http://%s/ (metrics at /metrics); every request sends \"Authorization: Bearer %s\"\n", apiAddr, apiToken)
		if ip := apiAddr.(*net.TCPAddr).IP; !ip.IsLoopback() {
			fmt.Fprintf(o.io.Err, "mqscope: WARNING: the control API listens on %s, beyond this machine: whoever reaches it with the token can list connections (client ids, user names, addresses) and close them, and plain HTTP carries the token in clear\n", apiAddr)
		}
	}
	if o.started != nil {
		o.started(srv, apiAddr)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	if model != nil {
		err = o.runUI(ctx, model, srv, in, up)
	} else {
		select {
		case <-ctx.Done():
			fmt.Fprintln(o.io.Err, "mqscope: shutting down")
		case err = <-served:
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if apiSrv != nil {
		hub.Close() // ends the event streams so Shutdown need not wait for them
		apiSrv.Shutdown(sctx)
	}
	serr := srv.Shutdown(sctx)
	if err == nil {
		err = <-served
	}
	if o.wire != nil {
		if werr := o.wire.Flush(); serr == nil {
			serr = werr
		}
	}
	if n := out.Dropped(); n > 0 {
		fmt.Fprintf(o.io.Err, "mqscope: %s not printed: the output could not keep up\n", inspect.Plural(n, "record"))
	}
	reportFilterErrors(o.io.Err, filter)
	if err == nil {
		err = serr
	}
	return err
}

// runUI shows the proxy's connections in the terminal UI until the user quits or ctx ends.
func (o *proxyOptions) runUI(ctx context.Context, m *ui.Model, srv *proxy.Server, in *proxy.Inspector, up string) error {
	var act ui.Actions = ui.NoActions{Reason: ui.WhyReadOnly}
	if !o.ui.readonly {
		act = &proxyActions{srv: srv, in: in, set: o.set, ic: o.ic, async: func(f func()) { go f() }}
	}
	source := fmt.Sprintf("proxy %s → %s", srv.Addr(), up)
	u := ui.New(m, act, ui.Options{Source: source, Live: true, NoColor: !o.io.Color.colorForScreen(), ShowSecrets: o.showSecrets})
	m.SetStatus("proxying: point devices at " + srv.Addr().String() + "; ? lists the keys")
	return u.Run(ctx, o.ui.screen)
}

// modelWriter adds the records to the UI's model.
type modelWriter struct{ m *ui.Model }

func (w modelWriter) Write(r inspect.Record) error { w.m.Add(r); return nil }
func (w modelWriter) Close() error                 { return nil }

// chainStages gives each direction the stages of every one of fs, in order.
func chainStages(fs ...func(*stream.Conn, stream.Dir, proxy.StageEnv) []proxy.Stage) func(*stream.Conn, stream.Dir, proxy.StageEnv) []proxy.Stage {
	return func(c *stream.Conn, dir stream.Dir, env proxy.StageEnv) []proxy.Stage {
		var out []proxy.Stage
		for _, f := range fs {
			out = append(out, f(c, dir, env)...)
		}
		return out
	}
}

// warnUnresolved looks the upstream host up once at start and warns when it does not resolve:
// the proxy runs all the same (the name may resolve later; each connection looks it up again),
// but a typo is said now rather than as CONNACK Server unavailable on the first device.
func warnUnresolved(ctx context.Context, w io.Writer, host string) {
	if net.ParseIP(host) != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := net.DefaultResolver.LookupHost(ctx, host); err != nil {
		fmt.Fprintf(w, "mqscope: warning: --upstream host %s does not resolve now (%v); proxying anyway, each connection will look it up again\n", host, err)
	}
}

// defaultLoopback puts 127.0.0.1 in an address given as ":port".
func defaultLoopback(addr string) string {
	if strings.HasPrefix(addr, ":") {
		return "127.0.0.1" + addr
	}
	return addr
}

// endpointOf shows the listening endpoint with the port actually bound.
func endpointOf(e proxy.Endpoint, a net.Addr) string {
	e.Addr = a.String()
	return e.String()
}
