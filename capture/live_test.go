package capture

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/stream"
)

// TestLiveLoopback captures on lo while a client talks MQTT to a mosquitto broker on a free
// port.
func TestLiveLoopback(t *testing.T) {
	m := peer.StartMosquitto(t)
	port, addr := m.Port, m.Addr

	closed := make(chan struct{})
	r := &recorder{onClose: func(c *recConn) {
		if int(c.info.Server.Port()) == port {
			close(closed)
		}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src, err := OpenLive("lo")
	if errors.Is(err, ErrPermission) && !peer.Required() {
		t.Skipf("live capture not permitted (needs root or CAP_NET_RAW): %v", err)
	}
	must(t, err)
	defer src.Close()
	src.Options = Options{Ports: []uint16{uint16(port)}}
	if src.dedupe {
		t.Error("the socket filter keeping only received packets could not be set on lo")
	}
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, r) }() // as a stream.Source

	c, err := net.Dial("tcp", addr)
	must(t, err)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Write(connect)
	must(t, err)
	expect(t, c, connack)
	pub := []byte{0x32, 0x0a, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x01, 'h', 'e', 'y'} // QoS 1, id 1
	_, err = c.Write(pub)
	must(t, err)
	expect(t, c, []byte{0x40, 0x02, 0x00, 0x01})
	_, err = c.Write([]byte{0xe0, 0x00})
	must(t, err)
	c.Close()
	// Stop once the capture has seen our connection close (others may come and go on lo).
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the capture did not see the connection close")
	}
	cancel()
	must(t, <-done)

	// Other tests may talk MQTT on lo at the same time: only ours counts.
	var mine []*recConn
	for _, c := range r.conns {
		if int(c.info.Server.Port()) == port {
			mine = append(mine, c)
		}
	}
	if len(mine) != 1 {
		t.Fatalf("%d connections to port %d captured, want 1", len(mine), port)
	}
	got := mine[0]
	want := append(append(append([]byte{}, connect...), pub...), 0xe0, 0x00)
	if !bytes.Equal(got.data[stream.C2S], want) || !bytes.Equal(got.data[stream.S2C], []byte{0x20, 0x02, 0x00, 0x00, 0x40, 0x02, 0x00, 0x01}) {
		t.Errorf("captured streams %x", got.data)
	}
	if (got.closed != "client FIN" && got.closed != "server FIN") || got.info.MidStream { // the broker may close first on DISCONNECT
		t.Errorf("closed %q, info %+v", got.closed, got.info)
	}
}

func expect(t *testing.T, c net.Conn, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading %x: %v", want, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}
