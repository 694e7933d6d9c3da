package mqttclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mqscope/mqscope/decode"
)

// ErrEnded is returned by Await once the connection ended and no packet read before the end
// was accepted.
var ErrEnded = errors.New("the connection ended")

// ErrNothing is returned (wrapped, with how long was waited) by Await when no packet it
// accepts came in time.
var ErrNothing = errors.New("nothing expected came")

// Inbox reads a Client's packets on a goroutine of its own, for a simulated device that
// answers the server while its script waits for what it expects: each packet goes to the
// handler first (on that goroutine: it may answer with Send), then to a queue that Await
// reads. A packet that finds the queue full is not queued (its handler saw it): a script
// waits for few of many.
type Inbox struct {
	q    chan decode.Packet
	done chan struct{}
	err  error // why reading stopped, once done is closed
}

// Receive starts reading c into an Inbox of queue packets: handle (nil: none) sees each packet
// as it comes, and end (nil: none) gets why reading stopped (ErrClosed at the peer's end, a
// *FrameTooLargeError, ...) before Done is closed. Nothing else may read c (Next) after.
func (c *Client) Receive(queue int, handle func(decode.Packet), end func(error)) *Inbox {
	ib := &Inbox{q: make(chan decode.Packet, queue), done: make(chan struct{})}
	go func() {
		defer close(ib.done)
		for {
			p, err := c.Next(context.Background())
			if err != nil {
				ib.err = err
				if end != nil {
					end(err)
				}
				return
			}
			if handle != nil {
				handle(p)
			}
			select {
			case ib.q <- p:
			default:
			}
		}
	}()
	return ib
}

// Done is closed once reading stopped (Err says why).
func (ib *Inbox) Done() <-chan struct{} { return ib.done }

// Err returns why reading stopped, once Done is closed.
func (ib *Inbox) Err() error {
	<-ib.done
	return ib.err
}

// Await returns the first packet queued or to come that ok accepts, dropping the others
// before it. It returns ErrEnded when the connection ended and none read before the end is
// accepted, ErrNothing (wrapped) when within passed, and ctx's error (wrapped) when ctx ended.
func (ib *Inbox) Await(ctx context.Context, within time.Duration, ok func(decode.Packet) bool) (decode.Packet, error) {
	t := time.NewTimer(within)
	defer t.Stop()
	for {
		select {
		case p := <-ib.q:
			if ok(p) {
				return p, nil
			}
		case <-ib.done:
			// What was read before the end is still there to look at.
			for {
				select {
				case p := <-ib.q:
					if ok(p) {
						return p, nil
					}
				default:
					return nil, ErrEnded
				}
			}
		case <-t.C:
			return nil, fmt.Errorf("%w within %s", ErrNothing, within)
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the peer: %w", ctx.Err())
		}
	}
}

// Ack returns the acknowledgement a receiver owes for p: PUBACK for a QoS 1 PUBLISH, PUBREC
// for a QoS 2 one, PUBCOMP for a PUBREL; nil for anything else. It is sent in the Client's
// version (Send).
func Ack(p decode.Packet) decode.Packet {
	switch q := p.(type) {
	case *decode.Publish:
		switch q.QoS {
		case 1:
			return &decode.Ack{PacketType: decode.PUBACK, PacketID: q.PacketID}
		case 2:
			return &decode.Ack{PacketType: decode.PUBREC, PacketID: q.PacketID}
		}
	case *decode.Ack:
		if q.PacketType == decode.PUBREL {
			return &decode.Ack{PacketType: decode.PUBCOMP, PacketID: q.PacketID}
		}
	}
	return nil
}

// PacketIDs hands out packet identifiers, 1 to 65,535 and round again; the zero value starts
// at 1. It is safe for concurrent use.
type PacketIDs struct {
	mu   sync.Mutex
	last uint16
}

// Next returns the next identifier that inUse (nil: none is) does not report in use. At least
// one identifier must be free.
func (ids *PacketIDs) Next(inUse func(uint16) bool) uint16 {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	for {
		ids.last++
		if ids.last == 0 {
			ids.last = 1
		}
		if inUse == nil || !inUse(ids.last) {
			return ids.last
		}
	}
}
