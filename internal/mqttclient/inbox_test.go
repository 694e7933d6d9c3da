package mqttclient_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/mqttclient"
)

// TestInbox: the handler sees each packet first and answers (the acknowledgements a receiver
// owes), Await finds what it waits for among the packets queued, says ErrNothing when the wait
// passes and ErrEnded once the connection ended and nothing read before is accepted.
func TestInbox(t *testing.T) {
	answers := make(chan []decode.Packet, 1)
	end := make(chan struct{})
	c := pipeServer(t, func(s net.Conn) {
		s.Write([]byte{
			0x32, 0x06, 0x00, 0x01, 't', 0x00, 0x07, 0x00, // PUBLISH QoS 1 id 7 to "t"
			0x34, 0x06, 0x00, 0x01, 't', 0x00, 0x08, 0x00, // PUBLISH QoS 2 id 8
			0x62, 0x02, 0x00, 0x09, // PUBREL id 9
			0x30, 0x04, 0x00, 0x01, 't', 0x00, // PUBLISH QoS 0
			0xD0, 0x00, // PINGRESP
		})
		// The answers: PUBACK 7, PUBREC 8, PUBCOMP 9 (4 bytes each).
		fr := decode.NewFramer(0)
		var got []decode.Packet
		buf := make([]byte, 64)
		for len(got) < 3 {
			n, err := s.Read(buf)
			if err != nil {
				break
			}
			fr.Write(buf[:n])
			for f, _ := fr.Next(); f != nil; f, _ = fr.Next() {
				got = append(got, decode.Decode(f, decode.V5))
			}
		}
		answers <- got
		<-end
	})
	seen := 0
	in := c.Receive(8, func(p decode.Packet) {
		seen++
		if a := mqttclient.Ack(p); a != nil {
			c.Send(a)
		}
	}, nil)
	ctx := context.Background()
	p, err := in.Await(ctx, 10*time.Second, func(p decode.Packet) bool { return p.Type() == decode.PINGRESP })
	if err != nil || p.Type() != decode.PINGRESP || seen != 5 {
		t.Fatalf("Await PINGRESP: %v, %v after %d packets handled", p, err, seen)
	}
	var acks []string
	for _, a := range <-answers {
		id, _ := decode.PacketID(a)
		acks = append(acks, fmt.Sprintf("%s %d", a.Type(), id))
	}
	if len(acks) != 3 || acks[0] != "PUBACK 7" || acks[1] != "PUBREC 8" || acks[2] != "PUBCOMP 9" {
		t.Errorf("the handler answered %q", acks)
	}
	if _, err := in.Await(ctx, 20*time.Millisecond, func(decode.Packet) bool { return true }); !errors.Is(err, mqttclient.ErrNothing) {
		t.Errorf("Await on a quiet connection: %v, want ErrNothing", err)
	}
	close(end)
	if _, err := in.Await(ctx, 10*time.Second, func(decode.Packet) bool { return false }); !errors.Is(err, mqttclient.ErrEnded) {
		t.Errorf("Await after the end: %v, want ErrEnded", err)
	}
	if !errors.Is(in.Err(), mqttclient.ErrClosed) {
		t.Errorf("Err after the peer's end: %v", in.Err())
	}
}

// TestPacketIDs: identifiers go round from 65,535 to 1, never 0, skipping those in use.
func TestPacketIDs(t *testing.T) {
	var ids mqttclient.PacketIDs
	if id := ids.Next(nil); id != 1 {
		t.Fatalf("first id %d", id)
	}
	inUse := func(id uint16) bool { return id == 2 || id == 65535 || id == 1 }
	if id := ids.Next(inUse); id != 3 {
		t.Fatalf("after 1, with 2 in use: %d", id)
	}
	for range 65530 {
		ids.Next(nil)
	}
	if id := ids.Next(nil); id != 65534 {
		t.Fatalf("id %d, want 65534", id)
	}
	if id := ids.Next(inUse); id != 3 { // 65535, 0, 1 and 2 skipped
		t.Fatalf("after the wrap: %d, want 3", id)
	}
}
