package main

import (
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/peer"
)

// pubFrame encodes an MQTT 5 PUBLISH at QoS 0 with Topic Alias alias (none when 0).
func pubFrame(topic string, alias uint32, payload string) []byte {
	var ps decode.Properties
	if alias > 0 {
		ps = decode.Properties{decode.IntProp(decode.PropTopicAlias, alias)}
	}
	b, _ := decode.Encode(nil, &decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: topic, Properties: ps, Payload: []byte(payload)})
	return b
}

// wantDisconnect reads the next frame from r and fails unless it is DISCONNECT with reason rc;
// then the connection must end.
func wantDisconnect(t *testing.T, c net.Conn, r *frameReader, rc decode.ReasonCode) {
	t.Helper()
	got := r.next(t)
	if d, ok := decode.Decode(got, decode.V5).(*decode.Disconnect); !ok || d.ReasonCode != rc {
		t.Fatalf("device got % x, want DISCONNECT 0x%02X", got, byte(rc))
	}
	if rest, _ := io.ReadAll(c); len(rest) != 0 {
		t.Errorf("after DISCONNECT: % x", rest)
	}
}

// TestRunProxyFaultAliasStale: the client maps alias 1 to s/t and leaves; on its next connection
// with the same client id the proxy sends its PUBLISH to s/t alias-only with alias 1, and
// mosquitto, which keeps no alias across connections, answers DISCONNECT 0x82 Protocol Error.
func TestRunProxyFaultAliasStale(t *testing.T) {
	m := peer.StartMosquitto(t, "max_topic_alias 10").Addr
	fs := startFaultProxy(t, m, "", "alias_stale dir=c2s name=stale")
	c1, r1, _ := fs.dial(t, "dev-stale")
	c1.Write(pubFrame("s/t", 1, "first"))
	c1.Write([]byte{0xC0, 0x00}) // PINGREQ: mosquitto took the PUBLISH once it answers
	if f := r1.next(t); f[0] != 0xD0 {
		t.Fatalf("first connection got % x, want PINGRESP", f)
	}
	c1.Write([]byte{0xE0, 0x00}) // DISCONNECT
	io.ReadAll(c1)
	c2, r2, _ := fs.dial(t, "dev-stale")
	c2.Write(pubFrame("s/t", 0, "second"))
	wantDisconnect(t, c2, r2, 0x82)
	if !fs.out.WaitFor(10*time.Second, func(s string) bool {
		return strings.Contains(s, `Topic Alias 1, mapped on client \"dev-stale\"'s previous connection only`)
	}) {
		t.Errorf("fault record missing: %s", fs.out.String())
	}
}

// TestRunProxyFaultAliasRemap: the client maps alias 1 to r/1; the proxy gives its PUBLISH to
// r/2 alias 1, which mosquitto takes as a remapping: the client's next alias-only PUBLISH with
// alias 1, meant for r/1, reaches the subscribers of r/2.
func TestRunProxyFaultAliasRemap(t *testing.T) {
	fs := startFaultSession(t, []string{"max_topic_alias 10"}, "remap", "alias_remap dir=c2s count=1")
	sub, _ := decode.Encode(nil, &decode.Subscribe{Base: fs.v5, PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "r/#"}}})
	fs.c.Write(sub)
	if f := fs.frames.next(t); decode.Type(f[0]>>4) != decode.SUBACK {
		t.Fatalf("got % x, want SUBACK", f)
	}
	fs.c.Write(pubFrame("r/1", 1, "first"))
	fs.c.Write(pubFrame("r/2", 0, "second"))
	fs.c.Write(pubFrame("", 1, "third"))
	want := [][2]string{{"r/1", "first"}, {"r/2", "second"}, {"r/2", "third"}}
	for _, w := range want {
		f := fs.frames.next(t)
		p, ok := decode.Decode(f, decode.V5).(*decode.Publish)
		if !ok || p.Topic != w[0] || string(p.Payload) != w[1] {
			t.Fatalf("got % x, want PUBLISH %q to %s", f, w[1], w[0])
		}
	}
	if !fs.out.WaitFor(10*time.Second, func(s string) bool { return strings.Contains(s, `Topic Alias 1 remapped from \"r/1\" to \"r/2\"`) }) {
		t.Errorf("fault record missing: %s", fs.out.String())
	}
}

// TestRunProxyFaultSubscriptionUnavailable: a broker says it has no wildcards, Subscription
// Identifiers or shared subscriptions, and the faults make the device's SUBSCRIBE use each. The
// inspection judges the SUBSCRIBE by the CONNACK the device got (an error finding).
//
// Two brokers say so: the embedded one playing a profile, and mosquitto (which has them all)
// through the proxy's CONNACK rewrite. Both grant the subscription: mosquitto because it has
// them; mochi v2.7.9, which the embedded broker is, because it only announces the
// capabilities. The standard's answer would be SUBACK 0xA2, 0xA1 or 0x9E: asserted as it is
// here, so that a fixed mochi shows up.
func TestRunProxyFaultSubscriptionUnavailable(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "bare.yaml")
	os.WriteFile(profile, []byte("name: bare\nwildcard_subscription_available: false\n"+
		"subscription_identifiers_available: false\nshared_subscription_available: false\n"), 0o600)
	const rewrite = "connack wildcard_subscription_available=0 subscription_identifier_available=0 shared_subscription_available=0"
	for _, broker := range []string{"embedded", "mosquitto"} {
		for _, tc := range []struct{ rule, finding string }{
			{"sub_wildcard", "MQSCOPE-WILDCARD-UNAVAILABLE"},
			{"sub_id", "MQSCOPE-SUBID-UNAVAILABLE"},
			{"sub_shared", "MQSCOPE-SHARED-UNAVAILABLE"},
		} {
			t.Run(broker+"/"+tc.rule, func(t *testing.T) {
				var fs *faultSession
				if broker == "embedded" {
					fs = startFaultProxy(t, "embedded", profile, tc.rule)
				} else {
					fs = startFaultProxy(t, peer.StartMosquitto(t).Addr, "", rewrite, tc.rule)
				}
				c, r, ack := fs.dial(t, "subber")
				ps := decode.Decode(ack, decode.V5).(*decode.Connack).Properties
				for _, id := range []decode.PropID{decode.PropWildcardSubAvailable, decode.PropSubIDAvailable, decode.PropSharedSubAvailable} {
					if n, ok := ps.Int(id); !ok || n != 0 {
						t.Fatalf("CONNACK %s = %d (present %v), want 0", id.Name(), n, ok)
					}
				}
				sub, _ := decode.Encode(nil, &decode.Subscribe{Base: fs.v5, PacketID: 5, Subscriptions: []decode.Subscription{{Filter: "a/b", QoS: 1}}})
				c.Write(sub)
				f := r.next(t)
				if p, ok := decode.Decode(f, decode.V5).(*decode.Suback); !ok || len(p.ReasonCodes) != 1 || p.ReasonCodes[0] != 1 {
					t.Errorf("got % x; %s grants QoS 1", f, broker)
				}
				waitOut(t, fs.out, `"type":"SUBACK"`)
				var subRec map[string]any
				for _, l := range strings.Split(fs.out.String(), "\n") {
					if strings.Contains(l, `"type":"SUBSCRIBE"`) {
						json.Unmarshal([]byte(l), &subRec)
					}
				}
				if !hasNote(subRec, tc.finding, "error") {
					t.Errorf("SUBSCRIBE record %v lacks the error %s", subRec, tc.finding)
				}
			})
		}
	}
}

// hasNote reports whether record r has a note of rule at level.
func hasNote(r map[string]any, rule, level string) bool {
	notes, _ := r["notes"].([]any)
	for _, n := range notes {
		if m, _ := n.(map[string]any); m["rule"] == rule && m["level"] == level {
			return true
		}
	}
	return false
}
