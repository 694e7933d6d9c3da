// Command benchgen writes a large synthetic MQTT capture for benchmarks: many connections
// (MQTT 5 and 3.1.1 alternately) open at once, each publishing QoS 0 and QoS 1 messages that
// the broker acknowledges, with several packets per segment now and then. With -serial the
// connections come one after another instead, each opening, publishing its share and closing.
// With -publish it writes one connection carrying one PUBLISH of that many MiB in 1,448-byte
// segments (the cost of a large frame arriving in small pieces).
//
//	go run ./capture/benchgen -o big.pcapng -conns 200 -packets 500000
//	go run ./capture/benchgen -o many.pcapng -serial -conns 100000 -packets 600000
//	go run ./capture/benchgen -o one.pcapng -publish 32
//
// With -keylog FILE every connection is MQTT over TLS 1.3 (crypto/tls on both sides, port
// 8883), its secrets written to FILE: a capture for decryption benchmarks.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

func main() {
	out := flag.String("o", "bench.pcapng", "output `FILE`")
	conns := flag.Int("conns", 200, "number of connections")
	packets := flag.Int("packets", 500000, "about how many MQTT packets in all")
	serial := flag.Bool("serial", false, "one connection after another, each closed before the next opens")
	quiet := flag.Bool("quiet", false, "with -serial: each connection stays open, quiet, after its share, and all close at the end")
	publish := flag.Int("publish", 0, "write one PUBLISH of this many `MiB` instead")
	keylog := flag.String("keylog", "", "carry every connection in TLS 1.3 and write its secrets to `FILE`")
	flag.Parse()
	var err error
	if *publish > 0 {
		err = runPublish(*out, *publish)
	} else {
		err = run(*out, *conns, *packets, *serial, *quiet, *keylog)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchgen:", err)
		os.Exit(1)
	}
}

type conn struct {
	s   byteStream
	v   decode.Version
	id  uint16
	seq int
}

// create starts the capture file name.
func create(name string) (*os.File, *pcapng.StreamWriter, error) {
	f, err := os.Create(name)
	if err != nil {
		return nil, nil, err
	}
	sw, err := pcapng.NewStreamWriter(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, sw, nil
}

func run(name string, nconns, npackets int, serial, quiet bool, keylog string) error {
	f, sw, err := create(name)
	if err != nil {
		return err
	}
	defer f.Close()
	var kl *os.File
	var tlsServer *tls.Config
	if keylog != "" {
		if kl, err = os.OpenFile(keylog, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err != nil {
			return err
		}
		defer kl.Close()
		if tlsServer, err = serverConfig(); err != nil {
			return err
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tick := func() time.Time { t = t.Add(time.Duration(50+rng.IntN(100)) * time.Microsecond); return t }
	server := netip.MustParseAddrPort("10.0.0.1:1883")
	if kl != nil {
		server = netip.MustParseAddrPort("10.0.0.1:8883")
	}
	total := 0
	open := func(i int) (*conn, error) {
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1 + byte(i>>16), byte(i >> 8), byte(i)}), uint16(20000+i%40000))
		s, err := sw.Open(client, server, tick())
		if err != nil {
			return nil, err
		}
		c := &conn{s: s, v: decode.V5}
		if kl != nil {
			if c.s, err = newTLSStream(s, tick(), tlsServer, kl); err != nil {
				return nil, err
			}
		}
		if i%2 == 1 {
			c.v = decode.V311
		}
		con := &decode.Connect{ProtocolName: "MQTT", ProtocolLevel: byte(c.v), CleanStart: true, KeepAlive: 60,
			ClientID: fmt.Sprintf("bench-%d", i)}
		if err := c.send(stream.C2S, tick(), con); err != nil {
			return nil, err
		}
		if err := c.send(stream.S2C, tick(), &decode.Connack{}); err != nil {
			return nil, err
		}
		total += 2
		return c, nil
	}
	end := func(c *conn) error {
		if err := c.send(stream.C2S, tick(), &decode.Disconnect{}); err != nil {
			return err
		}
		return c.s.Close(stream.C2S, tick())
	}
	var cs []*conn
	if !serial {
		cs = make([]*conn, nconns)
		for i := range cs {
			if cs[i], err = open(i); err != nil {
				return err
			}
		}
	}
	payload := make([]byte, 64)
	opened := 0
	for serial && opened < nconns || !serial && total < npackets {
		var c *conn
		if serial {
			// This connection's share of the packets, then its close.
			if c, err = open(opened); err != nil {
				return err
			}
			opened++
			for total < npackets*opened/nconns {
				if err := c.publish(rng, tick, payload, &total); err != nil {
					return err
				}
			}
			if quiet {
				cs = append(cs, c) // closed at the end
				continue
			}
			if err := end(c); err != nil {
				return err
			}
			continue
		}
		c = cs[rng.IntN(len(cs))]
		if err := c.publish(rng, tick, payload, &total); err != nil {
			return err
		}
	}
	for _, c := range cs {
		if err := end(c); err != nil {
			return err
		}
	}
	return sw.Flush()
}

// publish sends a burst of 1 to 4 publishes in one segment, and the broker's acknowledgements
// of those of QoS 1, counting the packets in total.
func (c *conn) publish(rng *rand.Rand, tick func() time.Time, payload []byte, total *int) error {
	topic := fmt.Sprintf("bench/%d/sensor/%d", c.seq%16, c.seq%7)
	c.seq++
	for i := range payload {
		payload[i] = byte('a' + rng.IntN(26))
	}
	n := 1 + rng.IntN(4)
	var b []byte
	var ids []uint16
	var err error
	for k := 0; k < n; k++ {
		p := &decode.Publish{Topic: topic, Payload: payload}
		if rng.IntN(2) == 0 {
			c.id++
			if c.id == 0 {
				c.id = 1
			}
			p.QoS, p.PacketID = 1, c.id
			ids = append(ids, c.id)
		}
		p.Version = c.v
		if b, err = decode.Encode(b, p); err != nil {
			return err
		}
	}
	if err := c.s.Write(stream.C2S, tick(), b); err != nil {
		return err
	}
	*total += n
	b = b[:0]
	for _, id := range ids {
		a := &decode.Ack{PacketType: decode.PUBACK, PacketID: id}
		a.Version = c.v
		if b, err = decode.Encode(b, a); err != nil {
			return err
		}
	}
	if len(b) > 0 {
		if err := c.s.Write(stream.S2C, tick(), b); err != nil {
			return err
		}
		*total += len(ids)
	}
	return nil
}

func (c *conn) send(d stream.Dir, t time.Time, p decode.Packet) error {
	p.Info().Version = c.v
	b, err := decode.Encode(nil, p)
	if err != nil {
		return err
	}
	return c.s.Write(d, t, b)
}

// runPublish writes one MQTT 5 connection that publishes one message of mib MiB, in segments
// of 1,448 bytes (the payload of a full-sized segment with TCP timestamps).
func runPublish(name string, mib int) error {
	f, sw, err := create(name)
	if err != nil {
		return err
	}
	defer f.Close()
	sw.MSS = 1448
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tick := func() time.Time { t = t.Add(100 * time.Microsecond); return t }
	s, err := sw.Open(netip.MustParseAddrPort("10.1.0.1:20000"), netip.MustParseAddrPort("10.0.0.1:1883"), tick())
	if err != nil {
		return err
	}
	c := &conn{s: s, v: decode.V5}
	payload := make([]byte, mib<<20)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	for _, m := range []struct {
		d stream.Dir
		p decode.Packet
	}{
		{stream.C2S, &decode.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 60, ClientID: "big"}},
		{stream.S2C, &decode.Connack{}},
		{stream.C2S, &decode.Publish{Topic: "bench/big", Payload: payload}},
		{stream.C2S, &decode.Disconnect{}},
	} {
		if err := c.send(m.d, tick(), m.p); err != nil {
			return err
		}
	}
	if err := s.Close(stream.C2S, tick()); err != nil {
		return err
	}
	return sw.Flush()
}
