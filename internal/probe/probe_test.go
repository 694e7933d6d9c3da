package probe

import (
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/mqttclient"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

// want is what a row must say: Granted exactly, Enforced, and a part of Seen.
type want struct {
	granted  string
	enforced Enforced
	seen     string
}

func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if cfg.Wait == 0 {
		cfg.Wait = 500 * time.Millisecond
	}
	cfg.Search = true
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func expect(t *testing.T, rep *Report, wants map[string]want) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range rep.Rows {
		seen[r.Limit] = true
		w, ok := wants[r.Limit]
		if !ok {
			continue
		}
		if r.Granted != w.granted || r.Enforced != w.enforced || !strings.Contains(r.Seen, w.seen) {
			t.Errorf("%s: granted %q enforced %q seen %q (note %q); want %q, %q, seen containing %q",
				r.Limit, r.Granted, r.Enforced, r.Seen, r.Note, w.granted, w.enforced, w.seen)
		}
	}
	for l := range wants {
		if !seen[l] {
			t.Errorf("no row %s", l)
		}
	}
}

func mosquitto(t *testing.T, conf ...string) Config {
	m := peer.StartMosquitto(t, conf...)
	return Config{Endpoint: stream.Endpoint{Transport: stream.TCP, Addr: m.Addr}}
}

// TestMosquittoLimits: mosquitto 2.0 with the limits of testdata/captures/mqtt5-limits (and a
// Server Keep Alive) grants them all and enforces them with the standard's reason codes, but
// for the Maximum Packet Size, which it counts without the Remaining Length's bytes: it takes
// packets of 201 and 202 bytes under a 200-byte limit and refuses 203.
func TestMosquittoLimits(t *testing.T) {
	t.Parallel()
	cfg := mosquitto(t, "max_packet_size 200", "max_topic_alias 2", "max_qos 1", "retain_available false",
		"max_inflight_messages 2", "max_keepalive 10")
	rep := run(t, cfg)
	expect(t, rep, map[string]want{
		LimitPacketSize:    {"200", No, "accepted"},
		LimitTopicAlias:    {"2", Yes, "DISCONNECT 0x94 Topic Alias invalid"},
		LimitMaximumQoS:    {"1", Yes, "DISCONNECT 0x9B QoS not supported"},
		LimitRetain:        {"0", Yes, "DISCONNECT 0x9A Retain not supported"},
		LimitReceiveMax:    {"2", NotTested, ""}, // QoS 2 is not granted: nothing to hold in flight
		LimitKeepAlive:     {"10 (asked for 3600)", Yes, "closed without DISCONNECT"},
		LimitWildcard:      {"1", NotTested, ""},
		LimitShared:        {"1", NotTested, ""},
		LimitSubIDs:        {"1", NotTested, ""},
		LimitPayload:       {"159 or more", Found, ""}, // all a 200-byte packet holds (160 makes 201 bytes)
		LimitSubscriptions: {"100 or more", Found, ""},
		LimitInFlight:      {"2", Found, "2 of 50"},
	})
	for _, r := range rep.Rows {
		if r.Limit == LimitPacketSize && r.Note != "accepted 201 to 202 bytes; refused 203 bytes (DISCONNECT 0x95 Packet too large)" {
			t.Errorf("packet size note %q", r.Note)
		}
		if r.Limit == LimitReceiveMax && !strings.Contains(r.Note, "QoS 2 is not granted") {
			t.Errorf("receive maximum note %q", r.Note)
		}
	}
	if rep.Conns > 40 || rep.Messages > 400 {
		t.Errorf("over the caps: %d connections, %d messages", rep.Conns, rep.Messages)
	}
}

// TestMosquittoDefaults: mosquitto with no limit set but max_inflight_messages and an
// undeclared message_size_limit. It answers a breach of its Receive Maximum with PUBREC 0x97
// Quota exceeded instead of DISCONNECT 0x93; the payload search finds the size limit it does
// not announce (it drops bigger messages silently).
func TestMosquittoDefaults(t *testing.T) {
	t.Parallel()
	cfg := mosquitto(t, "max_inflight_messages 3", "message_size_limit 1000")
	cfg.MaxKeepAliveWait = time.Second // the keep alive is TestMosquittoLimits's
	rep := run(t, cfg)
	expect(t, rep, map[string]want{
		LimitPacketSize: {"no limit", NotTested, ""},
		LimitTopicAlias: {"10", Yes, "DISCONNECT 0x94"}, // mosquitto's default max_topic_alias
		LimitMaximumQoS: {"2", NotTested, ""},
		LimitRetain:     {"1", NotTested, ""},
		LimitReceiveMax: {"3", Other, "PUBREC 0x97 Quota exceeded"},
		LimitKeepAlive:  {"none (3600 accepted)", NotTested, ""},
		LimitPayload:    {"1000", Found, "1001 bytes: not delivered"},
		LimitInFlight:   {"3", Found, "3 of 50"},
	})
	for _, r := range rep.Rows {
		if (r.Limit == LimitPacketSize || r.Limit == LimitMaximumQoS || r.Limit == LimitRetain) && !r.Default {
			t.Errorf("%s: not marked as the standard's default", r.Limit)
		}
	}
}

// TestMosquittoKeepAlive: with no Server Keep Alive, a client's keep alive of 2 s; mosquitto
// closes the silent connection without DISCONNECT (2 to 3 s after the 3 s the standard gives:
// its timer is coarse).
func TestMosquittoKeepAlive(t *testing.T) {
	t.Parallel()
	cfg := mosquitto(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg.Wait = 500 * time.Millisecond
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, rep, map[string]want{LimitKeepAlive: {"none (3600 accepted)", Yes, "closed without DISCONNECT after"}})
}

func embedded(t *testing.T, prof *inspect.Profile) Config {
	b, err := proxy.StartEmbeddedProfile("", prof, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return Config{Endpoint: b.Endpoint(), Dial: mqttclient.DialOptions{Dial: b.Dial}}
}

// TestEmbedded: mochi as the embedded broker has it: no Topic Alias Maximum in its CONNACK
// (0), yet it takes alias 1; it enforces its Receive Maximum of 1024 with DISCONNECT 0x93, and
// a keep alive of 2 s exactly.
func TestEmbedded(t *testing.T) {
	t.Parallel()
	cfg := embedded(t, nil)
	cfg.MaxMessages = 1200
	cfg.Wait = 2 * time.Second // 1025 QoS 2 messages take a while under -race
	rep := run(t, cfg)
	expect(t, rep, map[string]want{
		LimitPacketSize: {"no limit", NotTested, ""},
		LimitTopicAlias: {"0", No, "accepted"},
		LimitReceiveMax: {"1024", Yes, "DISCONNECT 0x93 Receive Maximum exceeded"},
		LimitKeepAlive:  {"none (3600 accepted)", Yes, "closed without DISCONNECT"},
		LimitPayload:    {"1048576 or more", Found, ""},
		LimitInFlight:   {"50 or more", Found, "50 of 50"},
	})
}

// TestEmbeddedProfile: the embedded broker playing apsaramq shows what the profile says, and
// the profile written from the probe reads back and matches it.
func TestEmbeddedProfile(t *testing.T) {
	t.Parallel()
	prof, err := inspect.LoadProfile("apsaramq")
	if err != nil {
		t.Fatal(err)
	}
	cfg := embedded(t, prof)
	cfg.MaxPayload = 100_000
	rep := run(t, cfg)
	expect(t, rep, map[string]want{
		LimitPacketSize: {"131072", Yes, "DISCONNECT 0x95 Packet too large"},
		LimitTopicAlias: {"30", Yes, "DISCONNECT 0x94"},
		LimitKeepAlive:  {"480 (asked for 3600)", NotTested, ""}, // 12 minutes of silence: not waited for
		LimitPayload:    {"65536", Found, "65537 bytes: DISCONNECT 0x95"},
	})
	if n := Compare(rep, prof); n != 0 {
		for _, r := range rep.Rows {
			if r.ProfileDiffers {
				t.Errorf("%s: probed %s, profile %s", r.Limit, r.Granted, r.Profile)
			}
		}
	}
	b, err := yaml.Marshal(Profile(rep, "written"))
	if err != nil {
		t.Fatal(err)
	}
	back, err := inspect.ParseProfile(b, "written")
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if back.MaxPayload != 65536 || back.TopicAliasMaximum != 30 || back.MaximumPacketSize != 131072 || back.KeepAlive.Max != 480 {
		t.Errorf("written profile:\n%s", b)
	}
	if n := Compare(rep, back); n != 0 {
		t.Errorf("%d rows differ from the profile written from them:\n%s", n, b)
	}
}

// TestCaps: a probe that would go over its caps says so in the row, and sends no more.
func TestCaps(t *testing.T) {
	cfg := embedded(t, nil)
	cfg.MaxConns, cfg.MaxMessages = 3, 5
	rep := run(t, cfg)
	if rep.Conns > 3 || rep.Messages > 5 {
		t.Errorf("%d connections, %d messages", rep.Conns, rep.Messages)
	}
	over := 0
	for _, r := range rep.Rows {
		if strings.Contains(r.Note, "over the probe's caps") || strings.Contains(r.Note, "over --max-messages") {
			over++
		}
	}
	if over == 0 {
		t.Errorf("no row says it was cut by the caps: %+v", rep.Rows)
	}
}

// TestPlan: the dry run names each breach and the caps.
func TestPlan(t *testing.T) {
	plan := strings.Join(Plan(Config{Endpoint: stream.Endpoint{Addr: "b:1883"}, Search: true, MaxConns: 7}), "\n")
	for _, s := range []string{"b:1883", "Topic Alias Maximum + 1", "DISCONNECT 0x95", "at most 7 connections", "search"} {
		if !strings.Contains(plan, s) {
			t.Errorf("plan lacks %q:\n%s", s, plan)
		}
	}
}

func TestPublishOfSize(t *testing.T) {
	for _, n := range []int{20, 128, 129, 130, 201, 16386, 70000} {
		b, err := publishOfSize(5, "t", n, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != n && !(n == 130 && len(b) == 131) {
			t.Errorf("asked %d, got %d", n, len(b))
		}
	}
}

// TestEmbeddedUnavailable: the embedded broker playing a profile without wildcard, shared and
// identified subscriptions says so in its CONNACK, yet grants all three (mochi): the probe's
// subscriptions are accepted, so not enforced.
func TestEmbeddedUnavailable(t *testing.T) {
	t.Parallel()
	no := false
	cfg := embedded(t, &inspect.Profile{Name: "none", WildcardSubscriptionAvailable: &no,
		SharedSubscriptionAvailable: &no, SubscriptionIdentifiersAvailable: &no})
	cfg.MaxKeepAliveWait = time.Second
	rep := run(t, cfg)
	expect(t, rep, map[string]want{
		LimitWildcard: {"0", No, "accepted"},
		LimitShared:   {"0", No, "accepted"},
		LimitSubIDs:   {"0", No, "accepted"},
	})
	for _, r := range rep.Rows {
		if r.Limit == LimitShared && r.Sent != "SUBSCRIBE $share/mqscope/mqscope/probe/mqscope-probe/sub" {
			t.Errorf("shared row sent %q", r.Sent)
		}
	}
}

// fakeBroker is a prober of a broker that answers each packet a connection sends with
// answer (CONNECT with a CONNACK of nothing first) until answer or the connection fails.
func fakeBroker(answer func(sc *mqttclient.Client, q decode.Packet) error) *prober {
	cfg := Config{Endpoint: stream.Endpoint{Addr: "fake"}, Wait: time.Second, Dial: mqttclient.DialOptions{
		Dial: func(context.Context) (net.Conn, error) {
			us, them := net.Pipe()
			go func() {
				sc := mqttclient.NewServerSide(us, nil)
				defer sc.Close()
				for {
					q, err := sc.Next(context.Background())
					if err == nil && q.Type() == decode.CONNECT {
						err = sc.Send(&decode.Connack{})
					} else if err == nil {
						err = answer(sc, q)
					}
					if err != nil {
						return
					}
				}
			}()
			return them, nil
		}}}
	cfg.defaults()
	return &prober{cfg: cfg, limits: inspect.Limits{MaximumQoS: 1}}
}

// inFlightBroker is a broker for the unacknowledged messages search that sends the subscriber
// the first distinct messages it is sent, each times times (times < 0: the first one without
// end), and acknowledges every PUBLISH.
func inFlightBroker(distinct, times int) *prober {
	var msgs []*decode.Publish
	return fakeBroker(func(sc *mqttclient.Client, q decode.Packet) error {
		switch q := q.(type) {
		case *decode.Subscribe:
			return sc.Send(&decode.Suback{PacketID: q.PacketID, ReasonCodes: []decode.ReasonCode{1}})
		case *decode.Publish:
			if len(msgs) < distinct {
				msgs = append(msgs, q)
			}
			err := sc.Send(&decode.Ack{PacketType: decode.PUBACK, PacketID: q.PacketID})
			for i := 0; err == nil && len(msgs) == distinct && (times < 0 || i < times*distinct); i++ {
				m := *msgs[i%distinct]
				m.PacketID = uint16(i%60000 + 1)
				err = sc.Send(&m)
			}
			if len(msgs) == distinct {
				distinct = -1 // sent
			}
			return err
		}
		return nil
	})
}

// TestInFlightSearch: the unacknowledged messages search counts each message once however
// often the broker sends it, and gives up on a broker that never stops sending instead of
// reading it until the probe's deadline.
func TestInFlightSearch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var row Row
	if err := searchInFlight(ctx, inFlightBroker(2, 20), &row); err != nil {
		t.Fatal(err)
	}
	if row.Granted != "2" || row.Seen != "2 of 50 messages sent to the subscriber, 50 PUBACKs, 38 sent again" {
		t.Errorf("granted %q, seen %q", row.Granted, row.Seen)
	}
	row = Row{}
	err := searchInFlight(ctx, inFlightBroker(1, -1), &row)
	if err == nil || !strings.Contains(err.Error(), "the broker kept sending: 200 packets read") || ctx.Err() != nil {
		t.Errorf("flooding broker: err %v, row %+v", err, row)
	}
}

// TestPayloadFits: the payload found for a size is the largest whose PUBLISH is within it, by
// encoding that payload and one byte more, across the sizes where the Remaining Length grows a
// byte.
func TestPayloadFits(t *testing.T) {
	const topic = "mqscope/probe/payload"
	size := func(n int) int {
		b, err := decode.Encode(nil, &decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: topic, Payload: make([]byte, n)})
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	for _, around := range []int{0, 128, 200, 16384, 2097152} {
		for m := max(around-6, 1); m <= around+6; m++ {
			n, err := payloadFits(decode.V5, topic, m)
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 && size(n) > m || size(n+1) <= m {
				t.Errorf("within %d bytes: payload %d (%d bytes; %d bytes with one more)", m, n, size(n), size(n+1))
			}
		}
	}
}

// TestPayloadBound: the payload search goes up to --max-payload or what the Maximum Packet Size
// holds, the smaller; a huge size announced (the protocol's largest, or over it as some brokers
// announce) bounds nothing and builds no packet of that size.
func TestPayloadBound(t *testing.T) {
	const topic = "mqscope/probe/payload"
	for _, tc := range []struct {
		max, hi int
		bound   string
	}{
		{0, 1 << 20, "--max-payload 1048576"},
		{200, 200 - 1 - 2 - 2 - len(topic) - 1, "the most a 200-byte packet holds"}, // header, Remaining Length, topic, properties
		{1<<20 + 8, 1<<20 + 8 - 1 - 3 - 2 - len(topic) - 1, "the most a 1048584-byte packet holds"},
		{1<<20 + len(topic) + 16, 1 << 20, "--max-payload 1048576"},
		{268435455, 1 << 20, "--max-payload 1048576"},
		{268435460, 1 << 20, "--max-payload 1048576"},
	} {
		p := &prober{cfg: Config{MaxPayload: 1 << 20}, limits: inspect.Limits{MaximumPacketSize: tc.max}}
		p.cfg.defaults()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		hi, bound, err := payloadBound(p, topic)
		runtime.ReadMemStats(&after)
		if err != nil || hi != tc.hi || bound != tc.bound {
			t.Errorf("Maximum Packet Size %d: %d (%s), %v; want %d (%s)", tc.max, hi, bound, err, tc.hi, tc.bound)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
			t.Errorf("Maximum Packet Size %d: %d bytes allocated", tc.max, n)
		}
	}
}

// TestSubscriptionsSearch: a SUBACK whose reason codes are not one for each filter counts no
// subscription it does not answer, and is shown.
func TestSubscriptionsSearch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		codes        int // reason codes of each SUBACK
		granted, see string
	}{
		{10, "100 or more", ""},
		{30, "0", "then SUBACK of 30 reason codes for 10 filters"},
		{3, "0", "then SUBACK of 3 reason codes for 10 filters"},
	} {
		p := fakeBroker(func(sc *mqttclient.Client, q decode.Packet) error {
			if sub, ok := q.(*decode.Subscribe); ok {
				return sc.Send(&decode.Suback{PacketID: sub.PacketID, ReasonCodes: make([]decode.ReasonCode, tc.codes)})
			}
			return nil
		})
		var row Row
		if err := searchSubscriptions(ctx, p, &row); err != nil || row.Granted != tc.granted || row.Seen != tc.see {
			t.Errorf("SUBACKs of %d codes: granted %q, seen %q, %v; want %q, %q", tc.codes, row.Granted, row.Seen, err, tc.granted, tc.see)
		}
	}
}

// TestPacketSizeNotTried: a granted Maximum Packet Size over --max-payload is not broken (the
// breach sends the granted size + 1 bytes, up to five times: 256 MB for the largest), and the
// row says why; a smaller one is tried.
func TestPacketSizeNotTried(t *testing.T) {
	for _, tc := range []struct {
		max   int
		tried bool
	}{{200, true}, {1<<20 + 1<<16, true}, {1<<20 + 1<<16 + 1, false}, {268435455, false}} {
		p := &prober{cfg: Config{MaxPayload: 1 << 20}, limits: inspect.Limits{MaximumPacketSize: tc.max}, connack: &decode.Connack{}}
		p.cfg.defaults()
		row := rowPacketSize(p)
		if tried := row.Note == ""; tried != tc.tried || !tc.tried && !strings.Contains(row.Note, "--max-payload") {
			t.Errorf("Maximum Packet Size %d: note %q; want tried %v", tc.max, row.Note, tc.tried)
		}
	}
}
