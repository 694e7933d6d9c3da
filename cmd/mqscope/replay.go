package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqscope/mqscope/capture"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/inspect/payload"
	"github.com/mqscope/mqscope/internal/mqttclient"
	"github.com/mqscope/mqscope/internal/replay"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

type replayOptions struct {
	io       *streams
	broker   brokerOptions
	to       string
	listen   string
	conn     int
	client   string
	filter   string
	speed    string
	wait     time.Duration
	clientID string
	format   string
	profile  string
	record   string
	ports    portsFlag
}

func newReplayCmd(io *streams) *cobra.Command {
	o := &replayOptions{io: io}
	cmd := &cobra.Command{
		Use:   "replay CAPTURE... --to ADDR",
		Short: "Play a captured device session against a broker and compare",
		Long: `Play the device's side of one captured connection against a broker (--to ADDR, or
"embedded" for an in-process broker, playing --profile if given), inspect the new session live,
and compare what the broker answers with what it answered in the capture. The first
divergence is shown ("captured: DISCONNECT 0x95 after PUBLISH #3; replayed: nothing within 5s")
and the exit status is then 1.

The connection is chosen by --conn N (as read numbers them), --client ID, or --filter EXPR
(the first connection with a packet matching it); exactly one must be chosen. Every byte the
device sent goes out as captured, breaches included, except where the new session requires
otherwise: the packet identifiers of its acknowledgements of the broker's messages, a Topic
Alias the captured broker allowed and the new one does not (the topic is sent instead), and
the Client Identifier with --client-id. Each rewrite is listed.

--speed max (the default) sends each packet as soon as the broker has answered what it
answered before it in the capture; --speed 1 keeps the captured timing, 2 twice as fast.`,
		Example: `  mqscope replay testdata/captures/mqtt5-limits.pcapng --conn 9 --to 127.0.0.1:1883
  mqscope replay device.pcapng --client sensor-7 --to tls://broker.example.com:8883 --speed 1
  mqscope replay device.pcapng --filter 'type == "DISCONNECT" && reason_code == 0x95' --to embedded --profile apsaramq`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{errors.New("replay needs a capture file")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runReplay(ctx, o, args)
		},
	}
	f := cmd.Flags()
	o.broker.addTLSFlags(f)
	f.StringVar(&o.to, "to", "", "the broker: `ADDR` (host:port, tls://, ws://, wss://) or \"embedded\"")
	f.StringVar(&o.listen, "listen", "", "serve the broker's side to one device connecting to TCP `ADDR` (host:port; loopback unless a host is given)")
	f.IntVar(&o.conn, "conn", 0, "replay connection `N` of the capture (as read numbers them)")
	f.StringVar(&o.client, "client", "", "replay the connection of Client Identifier `ID`")
	f.StringVar(&o.filter, "filter", "", "replay the first connection with a packet matching `EXPR`")
	f.StringVar(&o.speed, "speed", "max", "`max` (as fast as the broker answers), or a factor of the captured timing (1: as captured)")
	f.DurationVar(&o.wait, "wait", 5*time.Second, "how long to wait for each answer the broker gave in the capture, and for its last")
	f.StringVar(&o.clientID, "client-id", "", "send Client Identifier `ID` instead of the captured one")
	f.StringVar(&o.format, "format", "text", "output format: text or jsonl")
	f.StringVar(&o.profile, "profile", "", "with --to embedded, the broker grants and enforces the limits of this profile (`NAME` or YAML file)")
	f.StringVar(&o.record, "record", "", "record the new session to pcapng `FILE` (0600; mqscope read and replay read it)")
	f.Var(&o.ports, "port", "a TCP `PORT` carrying MQTT besides 1883 (repeatable)")
	return cmd
}

// replayDiverged ends a replay whose broker did not do what it did in the capture.
type replayDiverged struct{ d *replay.Divergence }

func (e replayDiverged) Error() string { return "replay diverged: " + e.d.String() }

func (o *replayOptions) check() (float64, error) {
	if (o.to == "") == (o.listen == "") {
		return 0, usageError{errors.New("--to ADDR (a broker, or embedded) or --listen ADDR (to serve a device) is needed, not both")}
	}
	if o.format != "text" && o.format != "jsonl" {
		return 0, usageError{fmt.Errorf("--format %q: want text or jsonl", o.format)}
	}
	if o.clientID != "" && o.listen != "" {
		return 0, usageError{errors.New("--client-id is for --to: with --listen the device sends its own")}
	}
	if o.profile != "" && o.to != "embedded" {
		return 0, usageError{errors.New("--profile needs --to embedded")}
	}
	n := 0
	for _, set := range []bool{o.conn != 0, o.client != "", o.filter != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return 0, usageError{errors.New("choose the connection with one of --conn, --client or --filter")}
	}
	if o.speed == "max" {
		return 0, nil
	}
	sp, err := strconv.ParseFloat(o.speed, 64)
	if err != nil || sp <= 0 {
		return 0, usageError{fmt.Errorf("--speed %q: want max or a number above 0", o.speed)}
	}
	return sp, nil
}

func runReplay(ctx context.Context, o *replayOptions, files []string) error {
	speed, err := o.check()
	if err != nil {
		return err
	}
	sel := replay.Selector{Conn: o.conn, ClientID: o.client}
	if o.filter != "" {
		if sel.Filter, err = inspect.CompileFilter(o.filter); err != nil {
			return usageError{err}
		}
	}
	src := &capture.Files{Names: files, Options: capture.Options{Ports: ports(capture.DefaultPort, o.ports)}}
	sessions, err := replay.Load(ctx, src, sel, inspect.Options{})
	if err != nil {
		return err
	}
	switch {
	case len(sessions) == 0:
		return errors.New("replay: no connection with its CONNECT in the capture matches")
	case len(sessions) > 1 && sel.Filter == nil:
		var ids []string
		for _, s := range sessions {
			ids = append(ids, strconv.Itoa(s.Conn))
		}
		return fmt.Errorf("replay: %d connections match (%s): choose one with --conn", len(sessions), strings.Join(ids, ", "))
	}
	s := sessions[0]
	if o.listen != "" {
		return serveReplay(ctx, o, s, speed)
	}
	var prof *inspect.Profile
	if o.profile != "" {
		if prof, err = inspect.LoadProfile(o.profile); err != nil {
			return usageError{err}
		}
	}
	b, err := o.broker.open(o.to, prof, o.io.Err)
	if err != nil {
		return err
	}
	defer b.Close()

	lv, err := o.live()
	if err != nil {
		return err
	}
	conn := lv.open(&stream.Conn{ID: 1, Start: time.Now(), Transport: b.endpoint.Transport, Broker: b.endpoint.Transport, Upstream: b.endpoint.String()})
	c, err := mqttclient.Dial(ctx, b.endpoint, b.dial, conn)
	if err != nil {
		return o.finish(lv, s, nil, err)
	}
	res, err := replay.AsClient(ctx, s, c, replay.Options{Speed: speed, Wait: o.wait, ClientID: o.clientID})
	c.Close()
	return o.finish(lv, s, res, err)
}

// live is the output of the new session: inspected and written as it goes, and recorded.
type live struct {
	w   inspect.Writer
	obs stream.Observers
	rec *pcapng.Recorder
}

func (o *replayOptions) live() (*live, error) {
	lv := &live{}
	if o.format == "jsonl" {
		lv.w = inspect.NewJSONWriter(o.io.Out, inspect.JSONOptions{Payload: payload.Preview})
	} else {
		lv.w = inspect.NewTextWriter(o.io.Out, inspect.TextOptions{Color: o.io.Color.colorFor(o.io.Out), Payload: payload.Preview})
	}
	lv.obs = stream.Observers{&inspect.Observer{Emit: func(r inspect.Record) {
		lv.w.Write(r)
		if f, ok := lv.w.(inspect.Flusher); ok {
			f.Flush()
		}
	}}}
	if o.record != "" {
		rec, err := pcapng.NewRecorder(o.record, netip.AddrPort{}, nil)
		if err != nil {
			return nil, fmt.Errorf("--record: %w", err)
		}
		lv.rec = rec
		lv.obs = append(lv.obs, rec)
	}
	return lv, nil
}

func (lv *live) open(c *stream.Conn) stream.ConnObserver { return lv.obs.Open(c) }

// finish flushes the output and says how the replay went; err is the replay's.
func (o *replayOptions) finish(lv *live, s *replay.Session, res *replay.Result, err error) error {
	if cerr := lv.w.Close(); err == nil {
		err = cerr
	}
	if lv.rec != nil {
		if rerr := lv.rec.Flush(); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("replay of connection %d: %w", s.Conn, err)
	}
	if err := writeReplayResult(o, s, res); err != nil {
		return err
	}
	if res.Divergence != nil {
		return replayDiverged{res.Divergence}
	}
	return nil
}

func writeReplayResult(o *replayOptions, s *replay.Session, res *replay.Result) error {
	if o.format == "jsonl" {
		rec := map[string]any{"kind": "replay", "conn": s.Conn, "client_id": s.ClientID, "to": o.to, "listen": o.listen,
			"sent": res.Sent, "received": res.Received, "remapped": res.Remapped,
			"captured": res.Captured, "replayed": res.Replayed, "diverged": res.Divergence != nil}
		if d := res.Divergence; d != nil {
			rec["divergence"] = map[string]any{"index": d.Index, "captured": d.Captured, "replayed": d.Replayed}
		}
		return json.NewEncoder(o.io.Out).Encode(rec)
	}
	out := o.io.Out
	for _, r := range res.Remapped {
		fmt.Fprintf(out, "remapped: %s\n", r)
	}
	peer, verdict := "to "+o.to, "the broker answered as in the capture"
	if o.listen != "" {
		peer, verdict = "to a device on "+o.listen, "the device sent what it sent in the capture"
	}
	if d := res.Divergence; d != nil {
		verdict = "diverged: " + d.String()
	}
	_, err := fmt.Fprintf(out, "replay of connection %d (%q) %s: %s sent, %s received; %s\n", s.Conn, s.ClientID, peer,
		inspect.Plural(res.Sent, "packet"), inspect.Plural(res.Received, "packet"), verdict)
	return err
}

// serveReplay waits for one device on --listen and plays the captured broker's side to it.
func serveReplay(ctx context.Context, o *replayOptions, s *replay.Session, speed float64) error {
	addr := defaultLoopback(o.listen)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	defer ln.Close()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	fmt.Fprintf(o.io.Err, "mqscope: replay: serving the broker of connection %d (%q) on %s; waiting for a device\n", s.Conn, s.ClientID, ln.Addr())
	nc, err := ln.Accept()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("--listen: %w", err)
	}
	ln.Close()
	lv, err := o.live()
	if err != nil {
		nc.Close()
		return err
	}
	conn := lv.open(&stream.Conn{ID: 1, Start: time.Now(), Client: addrPortOf(nc.RemoteAddr()), Server: addrPortOf(nc.LocalAddr())})
	c := mqttclient.NewServerSide(nc, conn)
	res, err := replay.AsServer(ctx, s, c, replay.Options{Speed: speed, Wait: o.wait})
	c.Close()
	return o.finish(lv, s, res, err)
}

func addrPortOf(a net.Addr) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
