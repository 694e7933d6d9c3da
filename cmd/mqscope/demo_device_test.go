package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
)

// A device sent a frame whose fixed header cannot be read (a Remaining Length of five bytes)
// answers DISCONNECT 0x81 and leaves, instead of waiting on a stream it can no longer cut.
func TestDeviceLeavesOnUnframeableBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan decode.Packet, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		fr := decode.NewFramer(0)
		buf := make([]byte, 4096)
		sent := false
		for {
			n, err := conn.Read(buf)
			fr.Write(buf[:n])
			for f, _ := fr.Next(); f != nil; f, _ = fr.Next() {
				if p := decode.Decode(f, decode.V5); p.Type() == decode.CONNECT && !sent {
					sent = true
					conn.Write([]byte{0x20, 0x03, 0x00, 0x00, 0x00})       // CONNACK
					conn.Write([]byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}) // PUBLISH, 5-byte Remaining Length
				} else if p.Type() == decode.DISCONNECT {
					got <- p
				}
			}
			if err != nil {
				return // the server keeps its side open until the device leaves
			}
		}
	}()
	d, _, err := dialDevice(context.Background(), ln.Addr().String(), &decode.Connect{ClientID: "dev", CleanStart: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.conn.Close(); <-d.done }()
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the device did not leave after bytes it cannot frame")
	}
	select {
	case p := <-got:
		if rc := p.(*decode.Disconnect).ReasonCode; rc != decode.MalformedPacket {
			t.Fatalf("DISCONNECT %s, want Malformed Packet", rc)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no DISCONNECT from the device")
	}
}
