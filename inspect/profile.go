package inspect

import (
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// Profile holds the limits a given broker is known to apply, so that what a device asks for
// and sends can be checked against them before they bite. Zero fields mean "no known limit".
// The YAML form uses the yaml tags; see profiles/apsaramq.yaml for an example.
type Profile struct {
	// Name identifies the profile ("spec", "apsaramq", or a user's).
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	Source      string `yaml:"source,omitempty" json:"source,omitempty"`
	// KeepAlive: the broker answers with a Server Keep Alive of the client's keep alive
	// clamped into [Min, Max] seconds.
	KeepAlive Range `yaml:"keep_alive,omitempty" json:"keep_alive"`
	// SessionExpiry: a non-zero Session Expiry Interval is clamped into [Min, Max] seconds;
	// 0 (or none) stays 0.
	SessionExpiry Range `yaml:"session_expiry,omitempty" json:"session_expiry"`
	// TopicAliasMaximum is the Topic Alias Maximum the broker grants in CONNACK: the client
	// may use aliases 1..TopicAliasMaximum.
	TopicAliasMaximum int `yaml:"topic_alias_maximum,omitempty" json:"topic_alias_maximum,omitempty"`
	// ServerAliasesUpTo: when CONNECT's Topic Alias Maximum is above this, the broker sends the
	// client no aliases at all.
	ServerAliasesUpTo int `yaml:"server_aliases_up_to,omitempty" json:"server_aliases_up_to,omitempty"`
	// ReceiveMaximum is the Receive Maximum the broker grants in CONNACK.
	ReceiveMaximum int `yaml:"receive_maximum,omitempty" json:"receive_maximum,omitempty"`
	// ReceiveMaximumMirrorsClient: the broker grants the client's own Receive Maximum.
	ReceiveMaximumMirrorsClient bool `yaml:"receive_maximum_mirrors_client,omitempty" json:"receive_maximum_mirrors_client,omitempty"`
	// MaximumPacketSize is the Maximum Packet Size the broker announces in CONNACK.
	MaximumPacketSize int `yaml:"maximum_packet_size,omitempty" json:"maximum_packet_size,omitempty"`
	// MaxPayload is the largest PUBLISH payload (message body) the broker accepts.
	MaxPayload int `yaml:"max_payload,omitempty" json:"max_payload,omitempty"`
	// MaximumQoS and the availabilities, as the broker announces them in CONNACK; nil: unknown.
	MaximumQoS                       *int  `yaml:"maximum_qos,omitempty" json:"maximum_qos,omitempty"`
	RetainAvailable                  *bool `yaml:"retain_available,omitempty" json:"retain_available,omitempty"`
	WildcardSubscriptionAvailable    *bool `yaml:"wildcard_subscription_available,omitempty" json:"wildcard_subscription_available,omitempty"`
	SubscriptionIdentifiersAvailable *bool `yaml:"subscription_identifiers_available,omitempty" json:"subscription_identifiers_available,omitempty"`
	SharedSubscriptionAvailable      *bool `yaml:"shared_subscription_available,omitempty" json:"shared_subscription_available,omitempty"`
}

// Range is an inclusive range of seconds; a zero bound is no bound.
type Range struct {
	Min int `yaml:"min,omitempty" json:"min,omitempty"`
	Max int `yaml:"max,omitempty" json:"max,omitempty"`
}

func (r Range) set() bool { return r.Min > 0 || r.Max > 0 }

// Clamp puts v into the range.
func (r Range) Clamp(v int) int {
	if r.Min > 0 && v < r.Min {
		v = r.Min
	}
	if r.Max > 0 && v > r.Max {
		v = r.Max
	}
	return v
}

// specProfile is the standard alone: no limits beyond what the peers announce.
var specProfile = &Profile{Name: "spec", Description: "the MQTT 5.0 standard alone: only the limits the peers announce"}

//go:embed profiles/*.yaml
var builtinFS embed.FS

// ErrProfile is the category of errors from LoadProfile.
var ErrProfile = errors.New("broker profile")

// Profiles returns the names of the built-in profiles, sorted.
func Profiles() []string {
	names := []string{"spec"}
	ents, _ := builtinFS.ReadDir("profiles")
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// LoadProfile returns the built-in profile with the given name ("spec", "apsaramq"), or reads
// a YAML profile from the file nameOrFile. Unknown keys in a file are errors.
func LoadProfile(nameOrFile string) (*Profile, error) {
	if nameOrFile == "" || nameOrFile == "spec" {
		return specProfile, nil
	}
	if !strings.ContainsAny(nameOrFile, `/\.`) {
		b, err := builtinFS.ReadFile("profiles/" + nameOrFile + ".yaml")
		if err != nil {
			return nil, fmt.Errorf("%w: no built-in profile %q (built in: %s; or give a YAML file)", ErrProfile, nameOrFile, strings.Join(Profiles(), ", "))
		}
		return ParseProfile(b, nameOrFile)
	}
	b, err := os.ReadFile(nameOrFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProfile, err)
	}
	return ParseProfile(b, strings.TrimSuffix(filepath.Base(nameOrFile), filepath.Ext(nameOrFile)))
}

// ParseProfile parses a YAML profile; name is used when the file has none.
func ParseProfile(b []byte, name string) (*Profile, error) {
	var p Profile
	if err := yaml.UnmarshalWithOptions(b, &p, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("%w %s:\n%s", ErrProfile, name, yaml.FormatError(err, false, true))
	}
	if p.Name == "" {
		p.Name = name
	}
	var errs []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	for _, r := range []struct {
		key string
		r   Range
	}{{"keep_alive", p.KeepAlive}, {"session_expiry", p.SessionExpiry}} {
		check(r.r.Min >= 0 && r.r.Max >= 0 && (r.r.Max == 0 || r.r.Min <= r.r.Max), "%s: min %d and max %d must be 0 or more, min <= max", r.key, r.r.Min, r.r.Max)
	}
	check(p.KeepAlive.Max <= 65535, "keep_alive.max %d is above 65535", p.KeepAlive.Max)
	check(p.TopicAliasMaximum >= 0 && p.TopicAliasMaximum <= 65535, "topic_alias_maximum %d is not in 0..65535", p.TopicAliasMaximum)
	check(p.ServerAliasesUpTo >= 0 && p.ServerAliasesUpTo <= 65535, "server_aliases_up_to %d is not in 0..65535", p.ServerAliasesUpTo)
	check(p.ReceiveMaximum >= 0 && p.ReceiveMaximum <= 65535, "receive_maximum %d is not in 0..65535", p.ReceiveMaximum)
	check(p.MaximumPacketSize >= 0, "maximum_packet_size %d is negative", p.MaximumPacketSize)
	check(p.MaxPayload >= 0, "max_payload %d is negative", p.MaxPayload)
	check(p.MaximumQoS == nil || (*p.MaximumQoS >= 0 && *p.MaximumQoS <= 2), "maximum_qos must be 0, 1 or 2")
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w %s: %s", ErrProfile, name, strings.Join(errs, "; "))
	}
	return &p, nil
}

// profileConnect warns, at CONNECT, about what the profile's broker will change or refuse.
func (c *Conn) profileConnect(r *PacketRecord, q *decode.Connect) {
	p := c.prof
	if p == specProfile || q.Version != decode.V5 {
		return
	}
	req := c.st.Requested
	if p.KeepAlive.set() && q.Read(decode.PartKeepAlive) {
		if ka := p.KeepAlive.Clamp(req.KeepAlive); ka != req.KeepAlive {
			what := fmt.Sprintf("keep alive %d s", req.KeepAlive)
			if req.KeepAlive == 0 {
				what = "keep alive 0 (off)"
			}
			r.add(decode.LevelWarning, RuleProfileKeepAlive, 0, fmt.Sprintf("%s: this broker (%s) clamps it to %d s", what, p.Name, ka))
		}
	}
	if p.SessionExpiry.set() && req.SessionExpiryInterval != nil && *req.SessionExpiryInterval != 0 && *req.SessionExpiryInterval != 0xFFFFFFFF {
		v := int(*req.SessionExpiryInterval)
		if se := p.SessionExpiry.Clamp(v); se != v {
			verb := "raised"
			if se < v {
				verb = "lowered"
			}
			r.add(decode.LevelWarning, RuleProfileSession, 0, fmt.Sprintf("session expiry %d s will be %s to %d s by this broker (%s)", v, verb, se, p.Name))
		}
	}
	if p.ServerAliasesUpTo > 0 && req.TopicAliasMaximum != nil && int(*req.TopicAliasMaximum) > p.ServerAliasesUpTo {
		r.add(decode.LevelWarning, RuleProfileTopicAlias, 0, fmt.Sprintf("Topic Alias Maximum %d in CONNECT: above %d, this broker (%s) will send no aliases", *req.TopicAliasMaximum, p.ServerAliasesUpTo, p.Name))
	}
	if w := q.Will; w != nil && p.MaxPayload > 0 && len(w.Payload) > p.MaxPayload {
		r.addWhy(decode.LevelWarning, RuleProfilePayload, decode.PacketTooLarge, fmt.Sprintf("Will body of %s, above this broker's %s", kb(len(w.Payload)), kb(p.MaxPayload)),
			fmt.Sprintf("Will body %s: above this broker's %s message limit (%s)", kb(len(w.Payload)), kb(p.MaxPayload), p.Name))
	}
	if w := q.Will; w != nil && p.MaximumQoS != nil && int(w.QoS) > *p.MaximumQoS {
		r.add(decode.LevelWarning, RuleProfileQoS, 0, fmt.Sprintf("Will QoS %d: this broker (%s) supports at most QoS %d and will refuse the connection", w.QoS, p.Name, *p.MaximumQoS))
	}
	if w := q.Will; w != nil && w.Retain && p.RetainAvailable != nil && !*p.RetainAvailable {
		r.add(decode.LevelWarning, RuleProfileRetain, 0, fmt.Sprintf("Will Retain 1: this broker (%s) does not support retained messages and will refuse the connection", p.Name))
	}
}

// profileConnack notes where the CONNACK differs from what the profile predicts.
func (c *Conn) profileConnack(r *PacketRecord) {
	p := c.prof
	if p == specProfile || c.connect == nil {
		return
	}
	req, g := c.st.Requested, c.st.Granted
	var diffs []string
	expect := func(what string, want int, got *uint32, def int) {
		v := def
		if got != nil {
			v = int(*got)
		}
		if v != want {
			s := "none"
			if got != nil {
				s = fmt.Sprint(*got)
			}
			diffs = append(diffs, fmt.Sprintf("%s %d, CONNACK has %s", what, want, s))
		}
	}
	if p.KeepAlive.set() && c.connectRead(decode.PartKeepAlive) {
		// Within the range, the profile predicts no Server Keep Alive, or the client's own.
		expect("Server Keep Alive", p.KeepAlive.Clamp(req.KeepAlive), g.ServerKeepAlive, req.KeepAlive)
	}
	if p.TopicAliasMaximum > 0 {
		expect("Topic Alias Maximum", p.TopicAliasMaximum, g.TopicAliasMaximum, 0)
	}
	if p.MaximumPacketSize > 0 {
		expect("Maximum Packet Size", p.MaximumPacketSize, g.MaximumPacketSize, 0)
	}
	if p.MaximumQoS != nil {
		expect("Maximum QoS", *p.MaximumQoS, g.MaximumQoS, 2)
	}
	if p.ReceiveMaximum > 0 {
		expect("Receive Maximum", p.ReceiveMaximum, g.ReceiveMaximum, 65535)
	}
	if p.ReceiveMaximumMirrorsClient {
		want := 65535
		if req.ReceiveMaximum != nil {
			want = int(*req.ReceiveMaximum)
		}
		expect("Receive Maximum", want, g.ReceiveMaximum, 65535)
	}
	if p.SessionExpiry.set() && req.SessionExpiryInterval != nil && *req.SessionExpiryInterval != 0 && *req.SessionExpiryInterval != 0xFFFFFFFF {
		if v := int(*req.SessionExpiryInterval); p.SessionExpiry.Clamp(v) != v {
			expect("Session Expiry Interval", p.SessionExpiry.Clamp(v), g.SessionExpiryInterval, v)
		}
	}
	for _, a := range []struct {
		what string
		want *bool
		got  *uint32
	}{
		{"Retain Available", p.RetainAvailable, g.RetainAvailable},
		{"Wildcard Subscription Available", p.WildcardSubscriptionAvailable, g.WildcardSubscriptionAvailable},
		{"Subscription Identifiers Available", p.SubscriptionIdentifiersAvailable, g.SubscriptionIdentifiersAvailable},
		{"Shared Subscription Available", p.SharedSubscriptionAvailable, g.SharedSubscriptionAvailable},
	} {
		if a.want != nil {
			expect(a.what, boolInt(*a.want), a.got, 1) // absent: available
		}
	}
	if len(diffs) > 0 {
		r.add(decode.LevelInfo, RuleProfileMismatch, 0, fmt.Sprintf("profile %s expected %s", p.Name, strings.Join(diffs, "; ")))
	}
}

// profilePublish warns about a client PUBLISH the profile's broker will refuse.
func (c *Conn) profilePublish(r *PacketRecord, q *decode.Publish) {
	p := c.prof
	if p == specProfile {
		return
	}
	if p.MaxPayload > 0 && len(q.Payload) > p.MaxPayload {
		r.addWhy(decode.LevelWarning, RuleProfilePayload, decode.PacketTooLarge, fmt.Sprintf("body of %s, above this broker's %s message limit", kb(len(q.Payload)), kb(p.MaxPayload)),
			fmt.Sprintf("PUBLISH body %s: above this broker's %s (%s)", kb(len(q.Payload)), kb(p.MaxPayload), p.Name))
	}
	if p.MaximumPacketSize > 0 && r.Size() > p.MaximumPacketSize && c.st.Effective.C2S.MaximumPacketSize == 0 {
		r.addWhy(decode.LevelWarning, RuleProfilePacketSize, decode.PacketTooLarge, fmt.Sprintf("over this broker's %d-byte Maximum Packet Size", p.MaximumPacketSize),
			fmt.Sprintf("PUBLISH of %d bytes: above this broker's %d-byte Maximum Packet Size (%s)", r.Size(), p.MaximumPacketSize, p.Name))
	}
	if a, ok := q.Properties.TopicAlias(); ok && p.TopicAliasMaximum > 0 && int(a) > p.TopicAliasMaximum && !r.HasRule("MQTT-3.3.2-9") {
		r.addWhy(decode.LevelWarning, RuleProfileTopicAlias, decode.TopicNameInvalid, fmt.Sprintf("Topic Alias %d, above this broker's %d", a, p.TopicAliasMaximum),
			fmt.Sprintf("Topic Alias %d: this broker (%s) accepts at most %d aliases and disconnects a client that uses more", a, p.Name, p.TopicAliasMaximum))
	}
	if q.QoS > 0 && p.ReceiveMaximum > 0 && c.inflight[stream.C2S] > p.ReceiveMaximum && c.st.Granted.ReceiveMaximum == nil {
		r.addWhy(decode.LevelWarning, RuleProfileReceiveMax, decode.ReceiveMaximumExceeded, fmt.Sprintf("%d unacknowledged, over this broker's Receive Maximum %d", c.inflight[stream.C2S], p.ReceiveMaximum),
			fmt.Sprintf("%d QoS 1/2 PUBLISH unacknowledged: this broker (%s) accepts at most %d in flight", c.inflight[stream.C2S], p.Name, p.ReceiveMaximum))
	}
	if p.MaximumQoS != nil && int(q.QoS) > *p.MaximumQoS && !r.HasRule("MQTT-3.2.2-11") {
		r.add(decode.LevelWarning, RuleProfileQoS, decode.QoSNotSupported, fmt.Sprintf("PUBLISH at QoS %d: this broker (%s) supports at most QoS %d", q.QoS, p.Name, *p.MaximumQoS))
	}
	if q.Retain && p.RetainAvailable != nil && !*p.RetainAvailable && !r.HasRule("MQTT-3.2.2-14") {
		r.add(decode.LevelWarning, RuleProfileRetain, decode.RetainNotSupported, fmt.Sprintf("retained PUBLISH: this broker (%s) does not support retained messages", p.Name))
	}
}

// profileSubscribe warns about subscriptions the profile's broker does not support.
func (c *Conn) profileSubscribe(r *PacketRecord, q *decode.Subscribe) {
	p := c.prof
	if p == specProfile {
		return
	}
	for _, s := range q.Subscriptions {
		if p.WildcardSubscriptionAvailable != nil && !*p.WildcardSubscriptionAvailable && strings.ContainsAny(s.Filter, "+#") {
			r.add(decode.LevelWarning, RuleProfileSubscribe, decode.WildcardSubsNotSupported, fmt.Sprintf("wildcard filter %q: this broker (%s) does not support wildcard subscriptions", s.Filter, p.Name))
		}
		if p.SharedSubscriptionAvailable != nil && !*p.SharedSubscriptionAvailable && strings.HasPrefix(s.Filter, "$share/") {
			r.add(decode.LevelWarning, RuleProfileSubscribe, decode.SharedSubsNotSupported, fmt.Sprintf("shared subscription %q: this broker (%s) does not support shared subscriptions", s.Filter, p.Name))
		}
	}
	if p.SubscriptionIdentifiersAvailable != nil && !*p.SubscriptionIdentifiersAvailable && q.Properties.Has(decode.PropSubscriptionID) {
		r.add(decode.LevelWarning, RuleProfileSubscribe, decode.SubscriptionIDsUnsupported, fmt.Sprintf("Subscription Identifier: this broker (%s) does not support them", p.Name))
	}
}

// kb formats a size in bytes as a person reads it: "70 KB", "300 bytes".
func kb(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KB", n>>10)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/1024)
	}
	return fmt.Sprintf("%d bytes", n)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
