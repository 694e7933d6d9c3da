package mqttclient_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/mqttclient"
)

// writeUntilError writes 1 MiB at a time until Write fails and returns the error, or fails the
// test when no error comes within a minute (Write blocked).
func writeUntilError(t *testing.T, c *mqttclient.Client) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		b := make([]byte, 1<<20)
		for {
			if err := c.Write(b); err != nil {
				errc <- err
				return
			}
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-time.After(time.Minute):
		c.Close() // unblocks the writer
		t.Fatal("Write to a peer that does not read still blocked after a minute")
		return nil
	}
}

// A peer that stops reading: Write gives up after the write timeout, saying so and where.
func TestWriteTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 1)
	go func() {
		if conn, err := ln.Accept(); err == nil {
			held <- conn // never read
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := mqttclient.New(conn, nil)
	defer c.Close()
	defer func() {
		if s := <-held; s != nil {
			s.Close()
		}
	}()
	c.SetWriteTimeout(100 * time.Millisecond)
	err = writeUntilError(t, c)
	if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "100ms write timeout") ||
		!strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("Write: %v; want the write timeout, with the peer's address", err)
	}
}

// The same over WebSocket, where the library sets its own deadline before every frame.
func TestWriteTimeoutWebSocket(t *testing.T) {
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		<-release // never read
	}))
	defer srv.Close()
	defer close(release)
	c := dialWS(t, srv)
	c.SetWriteTimeout(100 * time.Millisecond)
	if err := writeUntilError(t, c); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write: %v; want the write timeout", err)
	}
}

// pipeServer returns a client on one end of a pipe whose other end sends what serve writes.
func pipeServer(t *testing.T, serve func(net.Conn)) *mqttclient.Client {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		defer b.Close()
		serve(b)
	}()
	c := mqttclient.New(a, nil)
	t.Cleanup(func() { c.Close() })
	return c
}

// A peer announcing a 256 MB frame and sending megabytes of it: the client refuses the frame
// at its header, naming the size and the limit, without taking in what follows.
func TestHugeFrameRefused(t *testing.T) {
	junk := make([]byte, 4<<20)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := pipeServer(t, func(s net.Conn) {
		s.Write([]byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}) // PUBLISH, Remaining Length 268,435,455
		s.Write(junk)                                 // ends when the client closes
	})
	_, err := c.NextFrame(ctxT(t))
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	var tl *mqttclient.FrameTooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, decode.ErrTooLarge) || tl.Size != 268435460 || tl.Limit != mqttclient.DefaultMaxFrame {
		t.Fatalf("NextFrame: %v; want a 268,435,460-byte frame over the default limit", err)
	}
	for _, want := range []string{"PUBLISH of 268435460 bytes", "1048576-byte limit"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 2<<20 {
		t.Errorf("reading the header of a huge frame allocated %d bytes", grew)
	}
	if _, err2 := c.NextFrame(ctxT(t)); !errors.As(err2, &tl) {
		t.Errorf("the next NextFrame: %v; the stream cannot be read past the refused frame", err2)
	}
}

// The limit: the client's own Maximum Packet Size when its CONNECT sent one, else the default;
// SetMaxFrame wins over both. A frame of exactly the limit is taken.
func TestMaxFrame(t *testing.T) {
	// publish is a PUBLISH of exactly size bytes.
	publish := func(size int) []byte {
		p := &decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: "t"}
		for range 4 { // the Remaining Length may take more bytes as the payload grows
			b, err := decode.Encode(nil, p)
			if err != nil || len(b) == size {
				return b
			}
			p.Payload = make([]byte, len(p.Payload)+size-len(b))
		}
		t.Fatalf("no PUBLISH of %d bytes", size)
		return nil
	}
	for _, tc := range []struct {
		name    string
		maxProp uint32 // in CONNECT; 0: none
		set     int    // SetMaxFrame before Connect; 0: not called
		size    int    // of the PUBLISH after the CONNACK
		limit   int    // 0: taken
		why     string
	}{
		{name: "own maximum, at it", maxProp: 200, size: 200},
		{name: "own maximum, over it", maxProp: 200, size: 201, limit: 200, why: "Maximum Packet Size it sent in CONNECT"},
		{name: "default, over it", size: mqttclient.DefaultMaxFrame + 1, limit: mqttclient.DefaultMaxFrame, why: "default"},
		{name: "set wins", maxProp: 200, set: 4000, size: 3000},
		{name: "set, over it", set: 100, size: 101, limit: 100, why: "set by its user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := pipeServer(t, func(s net.Conn) {
				buf := make([]byte, 4096)
				s.Read(buf)                                   // the CONNECT
				s.Write([]byte{0x20, 0x03, 0x00, 0x00, 0x00}) // CONNACK
				s.Write(publish(tc.size))
				s.Read(buf) // until the client closes
			})
			if tc.set > 0 {
				c.SetMaxFrame(tc.set)
			}
			cp := &decode.Connect{ClientID: "limit"}
			if tc.maxProp > 0 {
				cp.Properties = decode.Properties{decode.IntProp(decode.PropMaximumPacketSize, tc.maxProp)}
			}
			if _, err := c.Connect(ctxT(t), cp); err != nil {
				t.Fatal(err)
			}
			f, err := c.NextFrame(ctxT(t))
			if tc.limit == 0 {
				if err != nil || len(f) != tc.size {
					t.Fatalf("NextFrame: %d bytes, %v; want the %d-byte PUBLISH", len(f), err, tc.size)
				}
				return
			}
			var tl *mqttclient.FrameTooLargeError
			if !errors.As(err, &tl) || tl.Size != tc.size || tl.Limit != tc.limit || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("NextFrame: %v; want %d bytes over %d (%s)", err, tc.size, tc.limit, tc.why)
			}
		})
	}
}

// Small reads cost what they read: 2,000 PINGRESPs written one at a time (each read alone)
// allocated 16 KiB each (32 MB) before.
func TestSmallReadsSmallAllocations(t *testing.T) {
	const n = 2000
	next := make(chan struct{})
	c := pipeServer(t, func(s net.Conn) {
		for range n {
			if _, err := s.Write([]byte{0xD0, 0x00}); err != nil {
				return
			}
			<-next // one read per PINGRESP
		}
	})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		q, err := c.Next(ctxT(t))
		if err != nil || q.Type() != decode.PINGRESP {
			t.Fatalf("packet %d: %v, %v", i, q, err)
		}
		next <- struct{}{}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Errorf("reading %d PINGRESPs one read each allocated %d bytes", n, grew)
	}
}
