package capture

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// enc encodes MQTT 5 packets built in code.
func enc(t *testing.T, ps ...decode.Packet) []byte {
	t.Helper()
	var b []byte
	for _, p := range ps {
		p.Info().Version = decode.V5
		var err error
		if b, err = decode.Encode(b, p); err != nil {
			t.Fatalf("encode %v: %v", p.Type(), err)
		}
	}
	return b
}

func v5Publish(topic string, alias uint16, qos byte, id uint16, payload string) *decode.Publish {
	p := &decode.Publish{Topic: topic, QoS: qos, PacketID: id, Payload: []byte(payload)}
	if alias != 0 {
		p.Properties = decode.Properties{decode.IntProp(decode.PropTopicAlias, uint32(alias))}
	}
	return p
}

// v5Session is a client and a server that both use Topic Alias 1, for different topics: the
// first part of each direction sets the alias, the second uses it.
func v5Session(t *testing.T) (c2sA, s2cA, c2sB, s2cB []byte) {
	c2sA = enc(t,
		&decode.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: "crafted",
			Properties: decode.Properties{decode.IntProp(decode.PropTopicAliasMaximum, 4)}},
		&decode.Subscribe{PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "down/#", QoS: 1}}},
		v5Publish("up/temperature", 1, 1, 2, "21.5"),
	)
	s2cA = enc(t,
		&decode.Connack{Properties: decode.Properties{decode.IntProp(decode.PropTopicAliasMaximum, 4)}},
		&decode.Suback{PacketID: 1, ReasonCodes: []decode.ReasonCode{1}},
		&decode.Ack{PacketType: decode.PUBACK, PacketID: 2},
		v5Publish("down/command", 1, 1, 7, "reboot"),
	)
	c2sB = enc(t,
		v5Publish("", 1, 1, 3, "21.6"),
		v5Publish("", 1, 0, 0, "21.7"),
		&decode.Ack{PacketType: decode.PUBACK, PacketID: 7},
		v5Publish("", 1, 0, 0, "21.8"),
		&decode.Pingreq{},
		&decode.Disconnect{},
	)
	s2cB = enc(t,
		&decode.Ack{PacketType: decode.PUBACK, PacketID: 3},
		v5Publish("", 1, 0, 0, "again"),
		&decode.Pingresp{},
		// A PUBLISH whose Remaining Length takes two bytes.
		v5Publish("down/firmware", 0, 0, 0, strings.Repeat("F", 300)),
	)
	return
}

// TestTsharkAgreesOnCrafted compares mqscope with tshark on captures built here for the
// reassembly cases, and spells out where tshark goes wrong.
func TestTsharkAgreesOnCrafted(t *testing.T) {
	c2sA, s2cA, c2sB, s2cB := v5Session(t)
	c2s, s2c := append(c2sA[:len(c2sA):len(c2sA)], c2sB...), append(s2cA[:len(s2cA):len(s2cA)], s2cB...)
	interleaved := func(t *testing.T, s *pcapng.TCPStream) {
		must(t, s.Write(stream.C2S, ms(1), c2sA))
		must(t, s.Write(stream.S2C, ms(2), s2cA))
		must(t, s.Write(stream.C2S, ms(3), c2sB))
		must(t, s.Write(stream.S2C, ms(4), s2cB))
	}
	cases := []struct {
		name  string
		write func(t *testing.T, s *pcapng.TCPStream)
		// fix corrects tshark's known mistakes after checking they are there.
		fix  func(t *testing.T, theirs []msg) []msg
		ipv6 bool
	}{
		{name: "whole packets", write: interleaved, fix: tsharkSharedAliases},
		{name: "whole packets over IPv6", write: interleaved, fix: tsharkSharedAliases, ipv6: true},
		{name: "many packets per segment, packets over many segments", write: func(t *testing.T, s *pcapng.TCPStream) {
			s.Writer().MSS = 29
			interleaved(t, s)
		}, fix: tsharkSharedAliases},
		{name: "Remaining Length split between segments", write: func(t *testing.T, s *pcapng.TCPStream) {
			must(t, s.Write(stream.C2S, ms(1), c2s))
			last := len(enc(t, v5Publish("down/firmware", 0, 0, 0, strings.Repeat("F", 300))))
			k := len(s2c) - last + 2 // the PUBLISH's first Remaining Length byte ends a segment
			must(t, s.Write(stream.S2C, ms(2), s2c[:k]))
			must(t, s.Write(stream.S2C, ms(3), s2c[k:]))
		}, fix: tsharkSplitLength},
		{name: "out of order, retransmitted, overlapping", write: func(t *testing.T, s *pcapng.TCPStream) {
			n := len(c2s)
			seg(t, s, stream.C2S, ms(1), 0, c2s[:40])
			seg(t, s, stream.C2S, ms(2), 60, c2s[60:n-10])
			seg(t, s, stream.C2S, ms(3), 30, c2s[30:70])
			seg(t, s, stream.C2S, ms(4), 0, c2s[:40])
			seg(t, s, stream.C2S, ms(5), n-10, c2s[n-10:])
			s.Skip(stream.C2S, int(uint32(n)))
			must(t, s.Write(stream.S2C, ms(6), s2c))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, sv := cli, srv
			if tc.ipv6 {
				c, sv = netip.MustParseAddrPort("[2001:db8::10]:50000"), netip.MustParseAddrPort("[2001:db8::1]:1883")
			}
			p := file(t, func(sw *pcapng.StreamWriter) {
				s, err := sw.Open(c, sv, ms(0))
				must(t, err)
				tc.write(t, s)
				must(t, s.Close(stream.C2S, ms(30)))
			})
			theirs := tsharkMsgs(t, p, "1883")
			if tc.fix != nil {
				theirs = tc.fix(t, theirs)
			}
			ours := mqscopeMsgs(t, p, Options{})
			compare(t, ours, theirs)
			if len(ours) != 17 {
				t.Errorf("mqscope decoded %d packets, want 17", len(ours))
			}
		})
	}
}

// tsharkSharedAliases undoes tshark's single Topic Alias table: it resolves an alias from
// the table of whichever direction last set it, so after the server maps alias 1 to
// down/command, the client's alias-only PUBLISH packets are shown on down/command too.
func tsharkSharedAliases(t *testing.T, ms []msg) []msg {
	wrong := 0
	last := map[string]string{}
	for i := range ms {
		m := &ms[i]
		if m.Type != 3 {
			continue
		}
		if m.Dir == "c2s" && m.Topic == "down/command" {
			m.Topic = last["c2s"]
			wrong++
		}
		last[m.Dir] = m.Topic
	}
	if wrong == 0 {
		t.Errorf("tshark resolves topic aliases per direction now: drop this correction")
	}
	return ms
}

// tsharkSplitLength undoes tshark's stumble on a Remaining Length split between segments:
// it takes the two bytes it has (type and the first length byte) for a whole header, decodes
// a reserved "type 0" packet and the PUBLISH's payload as more packets.
func tsharkSplitLength(t *testing.T, ms []msg) []msg {
	var out []msg
	wrong := false
	for _, m := range ms {
		if m.Dir == "s2c" && (wrong || m.Type == 0) {
			if !wrong {
				out = append(out, msg{Conn: m.Conn, Dir: m.Dir, Type: 3, Len: 316, ID: -1, Topic: "down/firmware"})
			}
			wrong = true
			continue
		}
		out = append(out, m)
	}
	if !wrong {
		t.Errorf("tshark decodes a Remaining Length split between segments now: drop this correction")
	}
	return out
}
