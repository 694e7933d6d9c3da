package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/peer"
)

// A device sent bytes it cannot frame answers DISCONNECT with the reason and leaves, instead
// of waiting on a stream it can no longer cut: a frame whose fixed header cannot be read (a
// Remaining Length of five bytes) gets 0x81; one announcing 256 MB, more than the device
// takes, gets 0x95 at its header, without the device waiting for (or holding) its bytes; one
// over the Maximum Packet Size it asked for gets 0x95, saying so.
func TestDeviceLeavesOnUnframeableBytes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maxSize uint32 // the device's Maximum Packet Size; 0: none
		bytes   []byte
		rc      decode.ReasonCode
		reason  string
	}{
		{"malformed header", 0, []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, decode.MalformedPacket, "remaining"},
		{"256 MB announced", 0, []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x01}, decode.PacketTooLarge, "PUBLISH frame of 268435460 bytes is larger than the 1048576-byte maximum"},
		{"over its Maximum Packet Size", 10, []byte{0x30, 0x0A, 0x00, 0x01, 't', 0, 0, 0, 0, 0, 0, 0}, decode.PacketTooLarge, "12-byte packet over my Maximum Packet Size of 10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan *decode.Disconnect, 1)
			sent := false
			addr := fakeServer(t, func(conn net.Conn, p decode.Packet) {
				if p.Type() == decode.CONNECT && !sent {
					sent = true
					conn.Write([]byte{0x20, 0x03, 0x00, 0x00, 0x00}) // CONNACK
					conn.Write(tc.bytes)
				} else if p.Type() == decode.DISCONNECT {
					got <- p.(*decode.Disconnect)
				}
			})
			c := &decode.Connect{ClientID: "dev", CleanStart: true}
			if tc.maxSize > 0 {
				c.Properties = decode.Properties{decode.IntProp(decode.PropMaximumPacketSize, tc.maxSize)}
			}
			d, _, err := dialDevice(context.Background(), addr, c, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.drop()
			select {
			case <-d.done:
			case <-time.After(10 * time.Second):
				t.Fatal("the device did not leave after bytes it cannot frame")
			}
			select {
			case p := <-got:
				reason, _ := p.Properties.String(decode.PropReasonString)
				if p.ReasonCode != tc.rc || !strings.Contains(reason, tc.reason) {
					t.Fatalf("DISCONNECT %s %q, want %s saying %q", p.ReasonCode, reason, tc.rc, tc.reason)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no DISCONNECT from the device")
			}
		})
	}
}

// A device waiting for a packet stops waiting when the story ends (the UI quit, --duration
// up), not after demoTimeout.
func TestDeviceExpectEndsWithStory(t *testing.T) {
	addr := fakeServer(t, func(conn net.Conn, p decode.Packet) {
		if p.Type() == decode.CONNECT {
			conn.Write([]byte{0x20, 0x03, 0x00, 0x00, 0x00}) // CONNACK, then silence
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	d, _, err := dialDevice(ctx, addr, &decode.Connect{ClientID: "dev", CleanStart: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.drop()
	got := make(chan error, 1)
	go func() {
		_, err := d.expect(func(decode.Packet) bool { return true })
		got <- err
	}()
	cancel()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("expect: %v, want the story's end (context canceled)", err)
		}
	case <-time.After(demoTimeout - time.Second):
		t.Fatalf("expect still waiting %v after the story ended", demoTimeout-time.Second)
	}
}

// fakeServer accepts connections on a loopback port, whose address it returns, and calls frame
// with each packet a device sends; it keeps its side open until the device leaves.
func fakeServer(t *testing.T, frame func(conn net.Conn, p decode.Packet)) string {
	t.Helper()
	return peer.Serve(t, func(conn net.Conn) {
		defer conn.Close()
		fr := decode.NewFramer(0)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			fr.Write(buf[:n])
			for f, _ := fr.Next(); f != nil; f, _ = fr.Next() {
				frame(conn, decode.Decode(f, decode.V5))
			}
			if err != nil {
				return
			}
		}
	})
}
