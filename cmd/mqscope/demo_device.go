package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/mqttclient"
	"github.com/mqscope/mqscope/stream"
)

// device is one simulated MQTT 5 client of mqscope demo, an mqttclient.Client sending
// decode.Packets, so that it can send exactly what the story needs (an alias-only PUBLISH, a
// Will, Correlation Data). It acknowledges QoS 1 and 2 deliveries itself, and answers a packet
// over its Maximum Packet Size with DISCONNECT 0x95, as the standard asks of a receiver
// [MQTT-3.1.2-24].
type device struct {
	name string
	ctx  context.Context // the story's: waiting for a packet stops when it ends
	c    *mqttclient.Client
	ids  mqttclient.PacketIDs

	maxPacket int                         // the Maximum Packet Size it asked for (0: none)
	aliases   map[uint16]string           // the server's topic aliases (read by the reader only)
	onPublish func(*decode.Publish)       // called from the reader for each PUBLISH received
	in        *mqttclient.Inbox           // what it received, for the script
	done      <-chan struct{}             // closed when the connection has ended
	end       guarded[*decode.Disconnect] // the DISCONNECT the server sent, if any
}

// guarded is a tiny guarded value (the DISCONNECT received, read after done).
type guarded[T any] struct {
	mu sync.Mutex
	v  T
}

func (a *guarded[T]) Store(v T) { a.mu.Lock(); a.v = v; a.mu.Unlock() }
func (a *guarded[T]) Load() T   { a.mu.Lock(); defer a.mu.Unlock(); return a.v }

// demoTimeout bounds each wait of the script for an answer: the proxy and the broker are in
// this process, so an answer that does not come within it is not coming.
const demoTimeout = 5 * time.Second

// dialDevice connects to addr, sends c and reads the CONNACK.
func dialDevice(ctx context.Context, addr string, c *decode.Connect, onPublish func(*decode.Publish)) (*device, *decode.Connack, error) {
	cl, err := mqttclient.Dial(ctx, stream.Endpoint{Transport: stream.TCP, Addr: addr}, mqttclient.DialOptions{}, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", c.ClientID, err)
	}
	cl.SetWriteTimeout(demoTimeout)
	d := &device{name: c.ClientID, ctx: ctx, c: cl, onPublish: onPublish, aliases: map[uint16]string{}}
	if n, ok := c.Properties.Int(decode.PropMaximumPacketSize); ok {
		d.maxPacket = int(n) // and the client refuses larger frames
	}
	// Reading starts before the CONNECT goes: what a resumed session is sent right after the
	// CONNACK is acknowledged before the script sends anything.
	d.in = cl.Receive(256, d.handle, d.ended)
	d.done = d.in.Done()
	if err := cl.SendConnect(c); err != nil {
		d.drop()
		return nil, nil, fmt.Errorf("%s: %w", d.name, err)
	}
	p, err := d.expect(func(p decode.Packet) bool { return p.Type() == decode.CONNACK })
	if err != nil {
		d.drop()
		return nil, nil, err
	}
	ack := p.(*decode.Connack)
	if ack.ReasonCode != 0 {
		d.drop()
		return nil, ack, fmt.Errorf("%s: CONNACK %s", d.name, ack.ReasonCode)
	}
	return d, ack, nil
}

// ended is the device's reaction to the end of reading: bytes it cannot frame get a DISCONNECT
// saying why; then it closes the connection.
func (d *device) ended(err error) {
	var tl *mqttclient.FrameTooLargeError
	var pr *decode.Problem
	switch {
	case errors.As(err, &tl) && d.maxPacket > 0 && tl.Limit == d.maxPacket:
		// Over what it allowed: say so and leave [MQTT-3.1.2-24] [MQTT-4.13.1-1].
		d.refuse(decode.PacketTooLarge, fmt.Sprintf("%d-byte packet over my Maximum Packet Size of %d", tl.Size, d.maxPacket))
	case errors.As(err, &pr):
		// Nothing after a frame that cannot be cut is readable: say why and leave, rather
		// than wait on a stream that cannot be read [MQTT-4.13.1-1].
		rc := decode.MalformedPacket
		if pr.Reason >= 0x80 {
			rc = pr.Reason
		}
		d.refuse(rc, pr.Error())
	}
	d.c.Close()
}

// refuse sends DISCONNECT rc with reason.
func (d *device) refuse(rc decode.ReasonCode, reason string) {
	d.send(&decode.Disconnect{Base: decode.Base{Version: decode.V5}, ReasonCode: rc, HasReason: true,
		Properties: decode.Properties{decode.StrProp(decode.PropReasonString, reason)}})
}

// handle acknowledges what the device receives.
func (d *device) handle(p decode.Packet) {
	if q, ok := p.(*decode.Publish); ok {
		// The topic resolved through the server's aliases, for the script.
		if a, ok := q.Properties.TopicAlias(); ok {
			if q.Topic != "" {
				d.aliases[a] = q.Topic
			} else {
				q.Topic = d.aliases[a]
			}
		}
	}
	if a := mqttclient.Ack(p); a != nil {
		d.send(a)
	}
	switch q := p.(type) {
	case *decode.Publish:
		if d.onPublish != nil {
			d.onPublish(q)
		}
	case *decode.Disconnect:
		d.end.Store(q)
	}
}

func (d *device) send(p decode.Packet) error {
	if err := d.c.Send(p); err != nil {
		return fmt.Errorf("%s: sending %s: %w", d.name, p.Type(), err)
	}
	return nil
}

// id returns the next packet identifier.
func (d *device) id() uint16 { return d.ids.Next(nil) }

var errDeviceClosed = errors.New("the connection ended")

// expect waits for a packet that ok accepts, skipping others.
func (d *device) expect(ok func(decode.Packet) bool) (decode.Packet, error) {
	p, err := d.in.Await(d.ctx, demoTimeout, ok)
	switch {
	case errors.Is(err, mqttclient.ErrEnded):
		return nil, fmt.Errorf("%s: %w", d.name, errDeviceClosed)
	case errors.Is(err, mqttclient.ErrNothing):
		return nil, fmt.Errorf("%s: nothing expected within %v", d.name, demoTimeout)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", d.name, err) // the story ended
	}
	return p, nil
}

// expectPublish waits for a PUBLISH of payload to topic (resolved through aliases).
func (d *device) expectPublish(topic, payload string) error {
	_, err := d.expect(func(p decode.Packet) bool {
		q, ok := p.(*decode.Publish)
		return ok && q.Topic == topic && string(q.Payload) == payload
	})
	if err != nil {
		return fmt.Errorf("waiting for %q on %s: %w", payload, topic, err)
	}
	return nil
}

// expectType waits for a packet of type t with packet identifier id (0: any).
func (d *device) expectType(t decode.Type, id uint16) (decode.Packet, error) {
	p, err := d.expect(func(p decode.Packet) bool {
		if p.Type() != t {
			return false
		}
		got, _ := decode.PacketID(p)
		return id == 0 || got == id
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for %s: %w", t, err)
	}
	return p, nil
}

// publish sends p, giving it a packet identifier at QoS 1 and 2, and completes its exchange
// (PUBACK, or PUBREC, PUBREL, PUBCOMP).
func (d *device) publish(p *decode.Publish) error {
	p.Base = decode.Base{Version: decode.V5}
	if p.QoS > 0 {
		p.PacketID = d.id()
	}
	if err := d.send(p); err != nil {
		return err
	}
	switch p.QoS {
	case 1:
		_, err := d.expectType(decode.PUBACK, p.PacketID)
		return err
	case 2:
		if _, err := d.expectType(decode.PUBREC, p.PacketID); err != nil {
			return err
		}
		if err := d.send(&decode.Ack{Base: decode.Base{Version: decode.V5}, PacketType: decode.PUBREL, PacketID: p.PacketID}); err != nil {
			return err
		}
		_, err := d.expectType(decode.PUBCOMP, p.PacketID)
		return err
	}
	return nil
}

// subscribe subscribes to filter at qos, with a Subscription Identifier when subID > 0.
func (d *device) subscribe(filter string, qos byte, subID uint32) error {
	s := &decode.Subscribe{Base: decode.Base{Version: decode.V5}, PacketID: d.id(),
		Subscriptions: []decode.Subscription{{Filter: filter, QoS: qos, Options: qos}}}
	if subID > 0 {
		s.Properties = decode.Properties{decode.IntProp(decode.PropSubscriptionID, subID)}
	}
	if err := d.send(s); err != nil {
		return err
	}
	_, err := d.expectType(decode.SUBACK, s.PacketID)
	return err
}

// disconnect ends the connection properly.
func (d *device) disconnect() error {
	err := d.send(&decode.Disconnect{Base: decode.Base{Version: decode.V5}})
	d.waitClosed()
	return err
}

// drop ends the connection without DISCONNECT (a device losing power): the broker sends its Will.
func (d *device) drop() {
	d.c.Close()
	<-d.done
}

// waitClosed closes the device's sending half and waits for the connection to end (the
// server closing it after a DISCONNECT).
func (d *device) waitClosed() {
	if tc, ok := d.c.Conn().(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	d.waitEnd()
}

// waitEnd waits for the connection to end (by the server, or by the device's own reaction),
// and closes it when that does not come within demoTimeout.
func (d *device) waitEnd() {
	select {
	case <-d.done:
	case <-time.After(demoTimeout):
		d.c.Close()
		<-d.done
	}
}
