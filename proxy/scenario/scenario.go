// Package scenario runs fault scenarios against a device: a scenario file says where the proxy
// listens and which broker it forwards to, which device to test (a command mqscope starts, a
// device that connects on its own, or a built-in scripted client), which fault rules to apply,
// and what the device (or the broker) must do, within what time. Each expectation is decided
// from the inspected records as they arrive, and reported as soon as it is decided.
package scenario

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/proxy/fault"
)

// ErrScenario is the category of scenario file errors.
var ErrScenario = errors.New("scenario")

// File is a scenario file.
type File struct {
	Path string `yaml:"-"`
	// Name of the suite; the file's base name when empty.
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Parallel lets the file's scenarios run at the same time (each has its own proxy and broker).
	Parallel  bool        `yaml:"parallel"`
	Scenarios []*Scenario `yaml:"scenarios"`
}

// Scenario is one test: a proxy, a device, faults and expectations.
type Scenario struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Listen is the proxy's address (127.0.0.1:0 when empty: a free port).
	Listen string `yaml:"listen"`
	// Upstream is the broker: an address, or "embedded" (the default).
	Upstream string `yaml:"upstream"`
	// Profile is played by the embedded broker (granted and enforced), and checked by the
	// inspection.
	Profile string `yaml:"profile"`
	// Seed of the proxy's random source (prob= in rules); the run's seed when 0.
	Seed uint64 `yaml:"seed"`
	// Timeout bounds the whole scenario (30s when 0).
	Timeout time.Duration `yaml:"timeout"`
	// Vars are given to a run: device as {name} and $MQSCOPE_NAME (with host, port, addr).
	Vars     map[string]string `yaml:"vars"`
	Requires Requires          `yaml:"requires"`
	Faults   []fault.Spec      `yaml:"faults"`
	Device   Device            `yaml:"device"`
	Expect   []*Expect         `yaml:"expect"`

	pos   string        // line:column of the scenario in its file
	rules []*fault.Rule // Faults, parsed
	prof  *inspect.Profile
}

// Requires is what a scenario needs; when unmet, the scenario is skipped.
type Requires struct {
	// MQTT is the protocol version the device must speak (5 or 3.1.1 as 4).
	MQTT int `yaml:"mqtt"`
	// Granted are CONNACK properties the device must have been granted, non-zero (e.g.
	// topic_alias_maximum), by their names in --filter's properties map.
	Granted []string `yaml:"granted"`
	// Broker are capabilities the broker must have: retain, wildcard_subscriptions,
	// subscription_identifiers, shared_subscriptions, qos1, qos2.
	Broker []string `yaml:"broker"`
	// Commands must be on PATH (mosquitto_pub), for run: devices.
	Commands []string `yaml:"commands"`
}

// Device is the device under test: exactly one of Run, External and Client.
type Device struct {
	// Run is a shell command started when the proxy listens and stopped at the end; {host},
	// {port} and {addr} are the proxy's. Its output is captured.
	Run string `yaml:"run"`
	// External: a device that connects to the proxy on its own (its address must be fixed:
	// give listen).
	External bool `yaml:"external"`
	// Client is the built-in scripted client.
	Client *Client `yaml:"client"`
	// Replay plays a captured device session through the proxy (a customer's capture as a
	// test: the expectations judge how the broker reacts now).
	Replay *ReplayDevice `yaml:"replay"`
}

// ReplayDevice is a captured session played as the device.
type ReplayDevice struct {
	// Capture is the pcap or pcapng file (relative to the scenario file).
	Capture string `yaml:"capture"`
	// Conn and ClientID choose the session (the first with a CONNECT when neither is given).
	Conn     int    `yaml:"conn"`
	ClientID string `yaml:"client_id"`
	// Speed divides the captured gaps; 0 plays as fast as the answers allow.
	Speed float64 `yaml:"speed"`
	path  string
}

// Client is the built-in client: it connects through the proxy and runs its steps in order.
type Client struct {
	Steps []*Step `yaml:"steps"`
}

// Step is one action of the built-in client: exactly one field set.
type Step struct {
	Connect     *ConnectStep   `yaml:"connect"`
	Publish     *PublishStep   `yaml:"publish"`
	Subscribe   *SubscribeStep `yaml:"subscribe"`
	Wait        *WaitStep      `yaml:"wait"`
	Expect      *Expect        `yaml:"expect"`
	Disconnect  *DisconnectMsg `yaml:"disconnect"`
	Close       bool           `yaml:"close"` // drop the connection without DISCONNECT
	pos, action string
}

// ConnectStep opens a connection and sends CONNECT.
type ConnectStep struct {
	ClientID   string `yaml:"client_id"`
	Version    int    `yaml:"version"`     // 5 (default) or 4 (3.1.1)
	CleanStart *bool  `yaml:"clean_start"` // true when absent
	KeepAlive  uint16 `yaml:"keep_alive"`
	// Ping sends PINGREQ every keep alive (true when absent); false lets the broker's keep-alive
	// enforcement act.
	Ping       *bool             `yaml:"ping"`
	Username   string            `yaml:"username"`
	Password   string            `yaml:"password"`
	Properties map[string]uint32 `yaml:"properties"` // session_expiry_interval, receive_maximum, maximum_packet_size, topic_alias_maximum
	// Wait for the CONNACK (true when absent).
	NoWait bool `yaml:"no_wait"`
}

// PublishStep sends PUBLISH packets.
type PublishStep struct {
	Topic   string `yaml:"topic"`
	Payload string `yaml:"payload"`
	// Size makes the whole packet exactly this many bytes (the payload is filled up).
	Size   int  `yaml:"size"`
	QoS    byte `yaml:"qos"`
	Retain bool `yaml:"retain"`
	Dup    bool `yaml:"dup"`
	// Alias sends a Topic Alias; with AliasOnly the topic is left empty.
	Alias     uint16 `yaml:"alias"`
	AliasOnly bool   `yaml:"alias_only"`
	// PacketID is chosen by the client when 0.
	PacketID uint16 `yaml:"packet_id"`
	// Count sends this many (1 when 0).
	Count int `yaml:"count"`
	// NoWait: do not wait for the acknowledgement of QoS 1/2 (the next step follows at once).
	NoWait bool `yaml:"no_wait"`
}

// SubscribeStep sends SUBSCRIBE and waits for SUBACK.
type SubscribeStep struct {
	Filter string `yaml:"filter"`
	QoS    byte   `yaml:"qos"`
}

// WaitStep waits a time, or for a packet from the server.
type WaitStep struct {
	For    string        `yaml:"for"` // a packet type from the server (PUBACK, DISCONNECT, ...)
	Within time.Duration `yaml:"within"`
	Time   time.Duration `yaml:"time"`
	// Closed waits for the connection to close.
	Closed bool `yaml:"closed"`
}

// DisconnectMsg sends DISCONNECT and closes.
type DisconnectMsg struct {
	Reason Code `yaml:"reason"`
}

// Code is a reason code written as a number (0x95 or 149).
type Code struct {
	V   decode.ReasonCode
	Set bool
}

// UnmarshalYAML reads a reason code.
func (c *Code) UnmarshalYAML(b []byte) error {
	s := strings.TrimSpace(string(b))
	n, err := strconv.ParseUint(s, 0, 8)
	if err != nil {
		return fmt.Errorf("reason code %q: want a number from 0 to 0xFF (e.g. 0x95)", s)
	}
	c.V, c.Set = decode.ReasonCode(n), true
	return nil
}

func (c Code) String() string { return fmt.Sprintf("0x%02X", byte(c.V)) }

// Load reads and checks a scenario file.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrScenario, err)
	}
	return Parse(b, path)
}

// Parse reads and checks a scenario file's contents; path names it in errors.
func Parse(b []byte, path string) (*File, error) {
	var f File
	if err := yaml.UnmarshalWithOptions(b, &f, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("%w %s:\n%s", ErrScenario, path, yaml.FormatError(err, false, true))
	}
	f.Path = path
	if f.Name == "" {
		f.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	af, err := parser.ParseBytes(b, 0)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrScenario, path, err)
	}
	at := func(p string) string { return nodePos(af, p) }
	if len(f.Scenarios) == 0 {
		return nil, fmt.Errorf("%w %s: no scenarios (give a list under scenarios:)", ErrScenario, path)
	}
	names := map[string]bool{}
	for i, sc := range f.Scenarios {
		p := fmt.Sprintf("$.scenarios[%d]", i)
		sc.pos = at(p)
		where := fmt.Sprintf("%s:%s", path, sc.pos)
		if sc.Name == "" {
			return nil, fmt.Errorf("%w %s: scenario %d has no name", ErrScenario, where, i+1)
		}
		if names[sc.Name] {
			return nil, fmt.Errorf("%w %s: scenario name %q used twice", ErrScenario, where, sc.Name)
		}
		names[sc.Name] = true
		if err := sc.check(p, filepath.Dir(path), at); err != nil {
			return nil, fmt.Errorf("%w %s: scenario %q: %w", ErrScenario, path, sc.Name, err)
		}
	}
	return &f, nil
}

// nodePos is the line:column of the node at a YAML path, or "" when there is none.
func nodePos(f *ast.File, p string) string {
	yp, err := yaml.PathString(p)
	if err != nil {
		return ""
	}
	n, err := yp.FilterFile(f)
	if err != nil || n == nil || n.GetToken() == nil {
		return ""
	}
	pos := n.GetToken().Position
	return fmt.Sprintf("%d:%d", pos.Line, pos.Column)
}

// check validates a scenario; p is its YAML path, at finds positions.
func (sc *Scenario) check(p, dir string, at func(string) string) error {
	in := func(sub string, err error) error {
		if err == nil {
			return nil
		}
		pos := at(p + sub)
		if pos == "" { // the key is missing: the scenario's own position
			pos = at(p)
		}
		return fmt.Errorf("%s: %s: %w", pos, strings.TrimPrefix(sub, "."), err)
	}
	if sc.Upstream == "" {
		sc.Upstream = "embedded"
	}
	if sc.Listen == "" {
		sc.Listen = "127.0.0.1:0"
	}
	if sc.Timeout == 0 {
		sc.Timeout = 30 * time.Second
	}
	if sc.Profile != "" {
		name := sc.Profile
		if strings.ContainsAny(name, `/\.`) && !filepath.IsAbs(name) {
			name = filepath.Join(dir, name) // a profile file beside the scenario file
		}
		prof, err := inspect.LoadProfile(name)
		if err != nil {
			return in(".profile", err)
		}
		sc.prof = prof
	}
	for i, fs := range sc.Faults {
		r, err := fs.Rule(i + 1)
		if err != nil {
			return in(fmt.Sprintf(".faults[%d]", i), err)
		}
		sc.rules = append(sc.rules, r)
	}
	for _, k := range slices.Sorted(maps.Keys(sc.Vars)) {
		switch {
		case k == "host" || k == "port" || k == "addr":
			return in(".vars", fmt.Errorf("%s is the proxy's (mqscope fills in host, port and addr)", k))
		case !varName.MatchString(k):
			return in(".vars", fmt.Errorf("%q: a name is lower-case letters, digits and _, as {name} in run:", k))
		}
	}
	if err := in(".requires", sc.Requires.check()); err != nil {
		return err
	}
	d := sc.Device
	n := 0
	for _, set := range []bool{d.Run != "", d.External, d.Client != nil, d.Replay != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return in(".device", errors.New("give exactly one of run: (a command), external: true, client: (the built-in client's steps), replay: (a captured session)"))
	}
	if d.External && strings.HasSuffix(sc.Listen, ":0") {
		return in(".listen", errors.New("an external device needs a fixed address to connect to: give listen: host:port"))
	}
	if d.Client != nil {
		if len(d.Client.Steps) == 0 {
			return in(".device.client", errors.New("no steps"))
		}
		for i, st := range d.Client.Steps {
			sp := fmt.Sprintf(".device.client.steps[%d]", i)
			st.pos = at(p + sp)
			if err := in(sp, st.check(p+sp, at)); err != nil {
				return err
			}
		}
		if d.Client.Steps[0].Connect == nil {
			return in(".device.client.steps[0]", errors.New("the first step must be connect"))
		}
	}
	if rp := d.Replay; rp != nil {
		switch {
		case rp.Capture == "":
			return in(".device.replay", errors.New("capture: the pcap or pcapng file to play is missing"))
		case rp.Speed < 0:
			return in(".device.replay.speed", fmt.Errorf("%g is negative", rp.Speed))
		}
		rp.path = rp.Capture
		if !filepath.IsAbs(rp.path) {
			rp.path = filepath.Join(dir, rp.path)
		}
	}
	if len(sc.Expect) == 0 {
		return in("", errors.New("no expectations (give a list under expect:)"))
	}
	for i, e := range sc.Expect {
		ep := fmt.Sprintf(".expect[%d]", i)
		if err := in(ep, e.check(at(p+ep))); err != nil {
			return err
		}
	}
	return nil
}

func (st *Step) check(p string, at func(string) string) error {
	var acts []string
	for _, a := range []struct {
		name string
		set  bool
	}{{"connect", st.Connect != nil}, {"publish", st.Publish != nil}, {"subscribe", st.Subscribe != nil},
		{"wait", st.Wait != nil}, {"expect", st.Expect != nil}, {"disconnect", st.Disconnect != nil}, {"close", st.Close}} {
		if a.set {
			acts = append(acts, a.name)
		}
	}
	if len(acts) != 1 {
		return fmt.Errorf("a step is exactly one of connect, publish, subscribe, wait, expect, disconnect, close (has %d)", len(acts))
	}
	st.action = acts[0]
	switch {
	case st.Connect != nil:
		c := st.Connect
		if c.Version == 0 {
			c.Version = 5
		}
		if c.Version != 5 && c.Version != 4 {
			return fmt.Errorf("connect: version %d: want 5 or 4 (3.1.1)", c.Version)
		}
		for k := range c.Properties {
			if _, ok := connectProps[k]; !ok {
				return fmt.Errorf("connect: unknown property %q (%s)", k, strings.Join(connectPropNames, ", "))
			}
		}
	case st.Publish != nil:
		pb := st.Publish
		if pb.QoS > 2 {
			return fmt.Errorf("publish: qos %d: want 0, 1 or 2", pb.QoS)
		}
		if pb.Topic == "" && !pb.AliasOnly {
			return errors.New("publish: topic is required (or alias with alias_only: true)")
		}
		if pb.AliasOnly && pb.Alias == 0 {
			return errors.New("publish: alias_only needs alias")
		}
		if pb.Size < 0 || pb.Size > maxPacket {
			return fmt.Errorf("publish: size %d: want 0 (no filling) to %d (the largest packet MQTT can frame)", pb.Size, maxPacket)
		}
		if pb.Count < 0 {
			return fmt.Errorf("publish: count %d is negative", pb.Count)
		}
	case st.Subscribe != nil:
		if st.Subscribe.Filter == "" {
			return errors.New("subscribe: filter is required")
		}
	case st.Wait != nil:
		w := st.Wait
		if w.For != "" {
			if _, ok := typeNamed(w.For); !ok {
				return fmt.Errorf("wait: for: unknown packet type %q", w.For)
			}
		}
		if (w.For != "" || w.Closed) == (w.Time > 0) {
			return errors.New("wait: give time: DURATION, or for: TYPE or closed: true (with within:)")
		}
		if w.Within == 0 {
			w.Within = 10 * time.Second
		}
	case st.Expect != nil:
		return st.Expect.check(at(p + ".expect"))
	}
	return nil
}

// varName is a name vars: may give: what {name} in a run: command can refer to (varRef).
var varName = regexp.MustCompile(`^` + varPattern + `$`)

const varPattern = `[a-z_][a-z0-9_]*`

// maxPacket is the largest MQTT packet: a fixed header byte, a four-byte Remaining Length and
// the largest length it holds.
const maxPacket = 1 + 4 + decode.MaxVarInt

// connectProps are the CONNECT properties the built-in client can send, by name.
var connectProps = map[string]decode.PropID{
	"session_expiry_interval": decode.PropSessionExpiry,
	"receive_maximum":         decode.PropReceiveMaximum,
	"maximum_packet_size":     decode.PropMaximumPacketSize,
	"topic_alias_maximum":     decode.PropTopicAliasMaximum,
}

// connectPropNames are connectProps' names, sorted: the order the client sends them in.
var connectPropNames = slices.Sorted(maps.Keys(connectProps))

func (r *Requires) check() error {
	if r.MQTT != 0 && r.MQTT != 5 && r.MQTT != 4 {
		return fmt.Errorf("mqtt: %d: want 5 or 4 (3.1.1)", r.MQTT)
	}
	for _, c := range r.Broker {
		if _, ok := capabilities[c]; !ok {
			return fmt.Errorf("broker: unknown capability %q (%s)", c, strings.Join(slices.Sorted(maps.Keys(capabilities)), ", "))
		}
	}
	for _, g := range r.Granted {
		if _, ok := grantedProps[g]; !ok {
			return fmt.Errorf("granted: unknown CONNACK property %q", g)
		}
	}
	return nil
}

// typeNamed is the packet type named name, in any case.
func typeNamed(name string) (decode.Type, bool) { return decode.ParseType(strings.ToUpper(name)) }
