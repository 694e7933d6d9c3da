package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/junit"
	"github.com/mqscope/mqscope/internal/probe"
	"github.com/mqscope/mqscope/stream"
)

type probeOptions struct {
	io                           *streams
	broker                       brokerOptions
	format                       string
	version                      int
	profile, writeProfile, junit string
	dryRun, noSearch             bool
	clientID, topic              string
	wait, keepAliveWait          time.Duration
	maxConns, maxMessages        int
	maxPayload, maxSubs, maxInFl int
}

func newProbeCmd(io *streams) *cobra.Command {
	o := &probeOptions{io: io}
	cmd := &cobra.Command{
		Use:   "probe BROKER",
		Short: "Report what a broker grants and what it enforces",
		Long: `Connect to BROKER as a client and report, one row per limit, what its CONNACK grants
(the standard's defaults filled in for absent properties) and what it enforces: each granted
limit is broken on a fresh connection (a packet over the Maximum Packet Size, a Topic Alias
over the maximum, QoS over the Maximum QoS, a retained message when retain is unavailable,
more QoS 2 messages in flight than the Receive Maximum, silence beyond the keep alive, a
wildcard, shared or identified subscription where unavailable) and the broker's reaction is
compared with what the standard asks. Searches then look for limits the broker does not
announce: the largest payload it delivers, the subscriptions it takes on one connection,
and how many messages it sends without acknowledgement.

ENFORCED is yes (as the standard says), no (the breach was accepted), other (refused, but
with another reason code, an acknowledgement instead of a DISCONNECT, a close without
DISCONNECT, or late), found (a search's result), or - (nothing to break, or not tested:
the note says why).

BROKER is host:port, tls://, ws://host:port/path, wss://, or "embedded" (an in-process broker;
with --profile it plays that profile). The probe is bounded: --max-conns connections and
--max-messages PUBLISH and SUBSCRIBE packets in all; --dry-run lists what it would send
and connects nowhere. The password (--password or $MQSCOPE_PASSWORD) is never printed.

Exit status 1 when a granted limit is not enforced as the standard says, or the broker differs
from --profile.`,
		Example: `  mqscope probe 127.0.0.1:1883
  mqscope probe tls://broker.example.com:8883 -u device1 --format jsonl   # password in $MQSCOPE_PASSWORD
  mqscope probe 127.0.0.1:1883 --profile apsaramq --junit probe.xml
  mqscope probe 127.0.0.1:1883 --write-profile mybroker.yaml
  mqscope probe --dry-run broker.example.com:1883`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runProbe(ctx, cmd, o, args[0])
		},
	}
	f := cmd.Flags()
	o.broker.addFlags(f)
	f.StringVar(&o.format, "format", "text", "output format: text or jsonl")
	f.IntVar(&o.version, "version", 5, "protocol level to speak: 5 (MQTT 5) or 4 (3.1.1: no limits in CONNACK, only the keep alive and the searches)")
	f.StringVar(&o.profile, "profile", "", "compare with a broker profile: a built-in `NAME` or a YAML file")
	f.StringVar(&o.writeProfile, "write-profile", "", "write what was found as a broker profile to YAML `FILE`")
	f.StringVar(&o.junit, "junit", "", "write a JUnit XML report to `FILE` (a testcase per row)")
	f.BoolVar(&o.dryRun, "dry-run", false, "list what would be sent, and connect nowhere")
	f.BoolVar(&o.noSearch, "no-search", false, "skip the searches for limits the broker does not announce")
	f.StringVar(&o.clientID, "client-id", "mqscope-probe", "Client Identifier `PREFIX` of the probe's connections (-1, -2, ... appended)")
	f.StringVar(&o.topic, "topic", "", "`PREFIX` of the topics used (default: mqscope/probe/CLIENT-ID)")
	f.DurationVar(&o.wait, "wait", 2*time.Second, "how long to wait for the broker's reaction to each breach")
	f.DurationVar(&o.keepAliveWait, "max-keepalive-wait", time.Minute, "longest silence the keep-alive probe may wait for the broker to close")
	f.IntVar(&o.maxConns, "max-conns", 40, "connections the probe may open in all")
	f.IntVar(&o.maxMessages, "max-messages", 400, "PUBLISH and SUBSCRIBE packets the probe may send in all")
	f.IntVar(&o.maxPayload, "max-payload", 1<<20, "largest payload the payload search tries, in `BYTES`")
	f.IntVar(&o.maxSubs, "max-subscriptions", 100, "most subscriptions the subscription search makes")
	f.IntVar(&o.maxInFl, "max-inflight", 50, "QoS 1 messages the in-flight search sends")
	return cmd
}

// probeFailed ends a probe that found limits not enforced as the standard says, or differences
// from the profile.
type probeFailed struct{ failed, differ []string }

func (e probeFailed) Error() string {
	var parts []string
	if len(e.failed) > 0 {
		parts = append(parts, fmt.Sprintf("%s not enforced as the standard says: %s",
			inspect.Plural(len(e.failed), "limit"), strings.Join(e.failed, ", ")))
	}
	if len(e.differ) > 0 {
		parts = append(parts, "the broker differs from the profile on "+strings.Join(e.differ, ", "))
	}
	return "probe: " + strings.Join(parts, "; ")
}

func (o *probeOptions) config(cmd *cobra.Command) (probe.Config, error) {
	if o.format != "text" && o.format != "jsonl" {
		return probe.Config{}, usageError{fmt.Errorf("--format %q: want text or jsonl", o.format)}
	}
	if o.version != 4 && o.version != 5 {
		return probe.Config{}, usageError{fmt.Errorf("--version %d: want 4 or 5", o.version)}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"--max-conns", o.maxConns}, {"--max-messages", o.maxMessages}, {"--max-payload", o.maxPayload},
		{"--max-subscriptions", o.maxSubs}, {"--max-inflight", o.maxInFl}} {
		if n.v <= 0 {
			return probe.Config{}, usageError{fmt.Errorf("%s %d: want 1 or more", n.name, n.v)}
		}
	}
	if o.wait <= 0 {
		return probe.Config{}, usageError{fmt.Errorf("--wait %s: want more than 0", o.wait)}
	}
	cfg := probe.Config{Version: decode.Version(o.version), ClientID: o.clientID, Topic: o.topic, Wait: o.wait,
		MaxConns: o.maxConns, MaxMessages: o.maxMessages, Search: !o.noSearch, MaxPayload: o.maxPayload,
		MaxSubscriptions: o.maxSubs, MaxInFlight: o.maxInFl, MaxKeepAliveWait: o.keepAliveWait}
	cfg.Username, cfg.HasUsername, cfg.Password, cfg.HasPassword = o.broker.credentials(cmd.Flags())
	return cfg, nil
}

func runProbe(ctx context.Context, cmd *cobra.Command, o *probeOptions, addr string) error {
	cfg, err := o.config(cmd)
	if err != nil {
		return err
	}
	var prof *inspect.Profile
	if o.profile != "" {
		if prof, err = inspect.LoadProfile(o.profile); err != nil {
			return usageError{err}
		}
	}
	out := o.io.Out
	if o.dryRun {
		cfg.Endpoint = stream.Endpoint{Transport: stream.Memory, Addr: addr}
		if addr != "embedded" {
			if cfg.Endpoint, err = stream.ParseEndpoint(addr, "127.0.0.1"); err != nil {
				return usageError{fmt.Errorf("broker %w", err)}
			}
		}
		fmt.Fprintf(out, "mqscope probe %s would send (nothing is sent with --dry-run):\n", addr)
		if cfg.HasUsername || cfg.HasPassword {
			pw := "none"
			if cfg.HasPassword {
				pw = "<redacted>"
			}
			fmt.Fprintf(out, "  every CONNECT: user name %q, password %s\n", cfg.Username, pw)
		}
		for i, line := range probe.Plan(cfg) {
			fmt.Fprintf(out, "  %2d. %s\n", i+1, line)
		}
		return nil
	}
	b, err := o.broker.open(addr, prof, o.io.Err)
	if err != nil {
		return err
	}
	defer b.Close()
	cfg.Endpoint, cfg.Dial = b.endpoint, b.dial
	start := time.Now()
	rep, err := probe.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("probe %s: %w", addr, err)
	}
	took := time.Since(start)
	if addr == "embedded" {
		rep.Broker = addr
	}
	if prof != nil {
		probe.Compare(rep, prof)
	}
	if o.format == "jsonl" {
		err = writeProbeJSON(out, rep, prof)
	} else {
		err = writeProbeText(out, rep, prof)
	}
	if err != nil {
		return err
	}
	if o.writeProfile != "" {
		if err := writeProfileFile(o.writeProfile, rep); err != nil {
			return err
		}
		fmt.Fprintf(o.io.Err, "mqscope: wrote the profile to %s\n", o.writeProfile)
	}
	if o.junit != "" {
		if err := writeProbeJUnit(o.junit, rep, prof, took); err != nil {
			return err
		}
	}
	var pf probeFailed
	for _, r := range rep.Rows {
		if r.Failed() {
			pf.failed = append(pf.failed, fmt.Sprintf("%s (%s)", r.Limit, r.Enforced))
		}
		if r.ProfileDiffers {
			pf.differ = append(pf.differ, r.Limit)
		}
	}
	if len(pf.failed)+len(pf.differ) > 0 {
		return pf
	}
	return nil
}

func enforcedText(e probe.Enforced) string {
	if e == probe.NotTested {
		return "-"
	}
	return string(e)
}

func writeProbeText(w io.Writer, rep *probe.Report, prof *inspect.Profile) error {
	fmt.Fprintf(w, "mqscope probe %s (MQTT %s): %s, %s\n\n", rep.Broker, rep.Version,
		inspect.Plural(rep.Conns, "connection"), inspect.Plural(rep.Messages, "message"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "LIMIT\tGRANTED\tENFORCED\tSEEN\tRULE"
	if prof != nil {
		head += "\tPROFILE " + prof.Name
	}
	fmt.Fprintln(tw, head)
	for _, r := range rep.Rows {
		g := r.Granted
		if r.Default {
			g += " (default)"
		}
		line := strings.Join([]string{r.Limit, g, enforcedText(r.Enforced), orDash(r.Seen), orDash(r.Rule)}, "\t")
		if prof != nil {
			p := orDash(r.Profile)
			if r.ProfileDiffers {
				p = "differs: " + p
			}
			line += "\t" + p
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// What each breach sent and expected, and the notes, below the table.
	fmt.Fprintln(w)
	for _, r := range rep.Rows {
		var parts []string
		if r.Sent != "" && r.Enforced != probe.Found {
			parts = append(parts, fmt.Sprintf("sent %s, expected %s", r.Sent, r.Expected))
		} else if r.Sent != "" {
			parts = append(parts, "sent "+r.Sent)
		}
		if r.Note != "" {
			parts = append(parts, r.Note)
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "%s: %s\n", r.Limit, strings.Join(parts, "; "))
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// probeRecord is a row in JSON lines.
type probeRecord struct {
	Kind   string `json:"kind"`
	Broker string `json:"broker"`
	probe.Row
}

func writeProbeJSON(w io.Writer, rep *probe.Report, prof *inspect.Profile) error {
	enc := json.NewEncoder(w)
	for _, r := range rep.Rows {
		if err := enc.Encode(probeRecord{Kind: "probe", Broker: rep.Broker, Row: r}); err != nil {
			return err
		}
	}
	sum := map[string]any{"kind": "probe-summary", "broker": rep.Broker, "version": rep.Version.String(),
		"connections": rep.Conns, "messages": rep.Messages, "limits": rep.Limits}
	if prof != nil {
		sum["profile"] = prof.Name
	}
	return enc.Encode(sum)
}

func writeProfileFile(name string, rep *probe.Report) error {
	base := strings.TrimSuffix(name[strings.LastIndexAny(name, `/\`)+1:], ".yaml")
	b, err := yaml.Marshal(probe.Profile(rep, base))
	if err != nil {
		return fmt.Errorf("--write-profile: %w", err)
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		return fmt.Errorf("--write-profile: %w", err)
	}
	return nil
}

func writeProbeJUnit(name string, rep *probe.Report, prof *inspect.Profile, took time.Duration) error {
	s := &junit.Suite{Name: "mqscope probe " + rep.Broker, Timestamp: time.Now().UTC().Format(time.RFC3339),
		Properties: []junit.Property{{Name: "broker", Value: rep.Broker}, {Name: "version", Value: rep.Version.String()},
			{Name: "connections", Value: fmt.Sprint(rep.Conns)}, {Name: "messages", Value: fmt.Sprint(rep.Messages)}}}
	if prof != nil {
		s.Properties = append(s.Properties, junit.Property{Name: "profile", Value: prof.Name})
	}
	for _, r := range rep.Rows {
		c := &junit.Case{Name: r.Limit, Classname: "probe", Time: junit.Duration(r.Took), Properties: []junit.Property{{Name: "granted", Value: r.Granted}}}
		detail := fmt.Sprintf("granted: %s\nsent: %s\nexpected: %s\nseen: %s\nrule: %s\nnote: %s\n",
			r.Granted, orDash(r.Sent), orDash(r.Expected), orDash(r.Seen), orDash(r.Rule), orDash(r.Note))
		switch {
		case r.Failed():
			msg := "not enforced: " + r.Seen
			if r.Enforced == probe.Other {
				msg = "enforced otherwise than the standard says: " + r.Seen
			}
			c.Failure = &junit.Result{Message: msg, Type: string(r.Enforced), Text: detail}
		case r.ProfileDiffers:
			c.Failure = &junit.Result{Message: fmt.Sprintf("%s, the profile %s states %s", r.Granted, prof.Name, r.Profile), Type: "profile", Text: detail}
		case r.Enforced == probe.NotTested && r.Note != "":
			c.Skipped = &junit.Result{Message: r.Note}
		default:
			c.SystemOut = detail
		}
		s.Add(c)
	}
	s.Time = junit.Duration(took)
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("--junit: %w", err)
	}
	if err := (&junit.Suites{Name: "mqscope probe", Suites: []*junit.Suite{s}}).Write(f); err != nil {
		f.Close()
		return fmt.Errorf("--junit %s: %w", name, err)
	}
	return f.Close()
}
