package ui

import (
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/inspect/payload"
	"github.com/mqscope/mqscope/stream"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// session drives an inspect.Conn with packets built in code, one millisecond apart, and
// keeps its records: the UI's input, as inspection makes it.
type session struct {
	t    testing.TB
	c    *inspect.Conn
	now  time.Time
	recs []inspect.Record
}

func newSession(t testing.TB, id int, client string) *session {
	opts := inspect.Options{Payload: payload.Preview}
	return &session{t: t, c: inspect.NewConn(id, client, "10.0.0.1:1883", opts), now: t0.Add(time.Duration(id) * time.Second)}
}

func (s *session) send(d stream.Dir, p decode.Packet) {
	s.t.Helper()
	s.now = s.now.Add(time.Millisecond)
	b, err := decode.Encode(nil, p)
	if err != nil {
		s.t.Fatalf("encode %s: %v", p.Type(), err)
	}
	s.recs = append(s.recs, s.c.Feed(d, s.now, b)...)
}

func (s *session) c2s(p decode.Packet) { s.t.Helper(); s.send(stream.C2S, p) }
func (s *session) s2c(p decode.Packet) { s.t.Helper(); s.send(stream.S2C, p) }

// close ends the connection, closed by side by with a FIN.
func (s *session) close(by stream.Side) {
	s.now = s.now.Add(time.Millisecond)
	s.recs = append(s.recs, s.c.Finish(s.now)...)
	if r := s.c.Close(s.now, stream.End{By: by, How: stream.FIN}); r != nil {
		s.recs = append(s.recs, r)
	}
}

func ip(id decode.PropID, v uint32) decode.Property { return decode.IntProp(id, v) }

func publish(topic string, qos byte, id uint16, body string, ps ...decode.Property) *decode.Publish {
	return &decode.Publish{Topic: topic, QoS: qos, PacketID: id, Payload: []byte(body), Properties: ps}
}

// fixture is two connections:
//
//	1 "sensor-7": CONNECT (password, Receive Maximum 20) / CONNACK (Receive Maximum 2,
//	  Maximum Packet Size 200, Topic Alias Maximum 2); SUBSCRIBE/SUBACK; a PUBLISH setting
//	  alias 1; one using it; a QoS 1 PUBLISH acknowledged and one not; two JSON readings of
//	  one topic; a PUBLISH with alias 3 (over the maximum), which the server answers with
//	  DISCONNECT 0x94; closed by the server.
//	2 "app": a request with Response Topic and Correlation Data, and its response; still
//	  open.
func fixture(t testing.TB) []inspect.Record {
	s := newSession(t, 1, "10.0.0.7:50001")
	s.c2s(&decode.Connect{ClientID: "sensor-7", KeepAlive: 60, CleanStart: true, HasUsername: true, Username: "dev",
		HasPassword: true, Password: []byte("hunter2"), Properties: decode.Properties{ip(decode.PropReceiveMaximum, 20)}})
	s.s2c(&decode.Connack{Properties: decode.Properties{ip(decode.PropReceiveMaximum, 2), ip(decode.PropMaximumPacketSize, 200), ip(decode.PropTopicAliasMaximum, 2)}})
	s.c2s(&decode.Subscribe{PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "cmd/sensor-7/#", QoS: 1}}})
	s.s2c(&decode.Suback{PacketID: 1, ReasonCodes: []decode.ReasonCode{1}})
	s.c2s(publish("sensors/7/temp", 0, 0, `{"t":21.5,"unit":"C"}`, ip(decode.PropTopicAlias, 1)))
	s.c2s(publish("", 0, 0, `{"t":21.7,"unit":"C"}`, ip(decode.PropTopicAlias, 1)))
	s.c2s(publish("sensors/7/state", 1, 10, "online", decode.Property{ID: decode.PropUserProperty, Str: "fw", Value: "1.2.3"}))
	s.s2c(&decode.Ack{PacketType: decode.PUBACK, PacketID: 10})
	s.c2s(publish("sensors/7/state", 1, 11, "busy"))
	s.c2s(publish("sensors/7/bad", 0, 0, "x", ip(decode.PropTopicAlias, 3)))
	s.s2c(&decode.Disconnect{ReasonCode: 0x94, HasReason: true})
	s.close(stream.Server)

	a := newSession(t, 2, "10.0.0.9:50002")
	a.c2s(&decode.Connect{ClientID: "app", KeepAlive: 30, CleanStart: true})
	a.s2c(&decode.Connack{})
	a.c2s(publish("svc/time/req", 0, 0, "now?", decode.Property{ID: decode.PropResponseTopic, Str: "app/resp"}, decode.Property{ID: decode.PropCorrelationData, Bin: []byte{1, 2}}))
	a.s2c(publish("app/resp", 0, 0, "12:00", decode.Property{ID: decode.PropCorrelationData, Bin: []byte{1, 2}}))
	// The response topic as the responder publishes it, on the server's side of the
	// connection (the responder is another client; here the same for brevity).
	a.c2s(publish("app/resp", 0, 0, "12:00:01", decode.Property{ID: decode.PropCorrelationData, Bin: []byte{1, 2}}))
	return append(s.recs, a.recs...)
}

// fixtureModel is a model fed with the fixture.
func fixtureModel(t testing.TB) *Model {
	m := NewModel(0)
	for _, r := range fixture(t) {
		m.Add(r)
	}
	return m
}
