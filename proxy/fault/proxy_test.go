package fault

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/fakeclock"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

// ends hears how connections end.
type ends struct{ c chan stream.End }

func (e *ends) Open(*stream.Conn) stream.ConnObserver { return e }
func (e *ends) Data(stream.Dir, time.Time, []byte)    {}
func (e *ends) Gap(stream.Dir, time.Time, int)        {}
func (e *ends) Close(_ time.Time, end stream.End)     { e.c <- end }

func (e *ends) next(t *testing.T) stream.End {
	t.Helper()
	select {
	case end := <-e.c:
		return end
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not end")
		return stream.End{}
	}
}

// faultProxy is a device connected through a proxy with fault rules to a raw TCP "broker".
type faultProxy struct {
	srv            *proxy.Server
	device, broker net.Conn
	clock          *fakeclock.Clock
	ws             *websocket.Conn // the device's, over WebSocket
	ends           *ends
	applied        chan Applied
}

func startFaultProxy(t *testing.T, rules ...string) *faultProxy {
	t.Helper()
	return startFaultProxyOver(t, stream.TCP, rules...)
}

// startFaultProxyOver is startFaultProxy with the device connected over tr (TCP, TLS with a
// CA of the test's, or WebSocket: fp.ws, fp.device its network connection).
func startFaultProxyOver(t *testing.T, tr stream.Transport, rules ...string) *faultProxy {
	t.Helper()
	rs, err := ParseAll(rules)
	if err != nil {
		t.Fatal(err)
	}
	// The fake clock starts at the real time: the proxy also sets socket deadlines by it.
	fp := &faultProxy{clock: fakeclock.New(time.Now()), ends: &ends{c: make(chan stream.End, 4)}, applied: make(chan Applied, 64)}
	set := &Set{Rules: rs, Report: func(a Applied) { fp.applied <- a }}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	up, _ := proxy.ParseEndpoint(ln.Addr().String(), "127.0.0.1")
	cfg := proxy.Config{Listen: proxy.Endpoint{Transport: tr, Addr: "127.0.0.1:0", Path: "/mqtt"}, Upstream: up,
		Stages: set.Stages, Clock: fp.clock, Observers: []stream.Observer{fp.ends}, Logf: t.Logf}
	var roots *x509.CertPool
	if tr == stream.TLS {
		ca, err := proxy.InitCA(t.TempDir(), false)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ListenTLS = ca.ServerConfig("localhost")
		roots = x509.NewCertPool()
		roots.AddCert(ca.Cert)
	}
	fp.srv, err = proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- fp.srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		fp.srv.Shutdown(ctx)
		<-served
	})
	addr := fp.srv.Addr().String()
	switch tr {
	case stream.TLS:
		fp.device, err = tls.Dial("tcp", addr, &tls.Config{ServerName: "localhost", RootCAs: roots})
	case stream.WebSocket:
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
		if fp.ws, _, err = d.Dial("ws://"+addr+"/mqtt", nil); err == nil {
			fp.device = fp.ws.NetConn()
		}
	default:
		fp.device, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fp.device.Close() })
	if fp.broker, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fp.broker.Close() })
	for _, c := range []net.Conn{fp.device, fp.broker} {
		c.SetDeadline(time.Now().Add(20 * time.Second))
	}
	return fp
}

// held waits for a stage to wait on the clock, and checks that the wait lasts d: not ended a
// nanosecond before, ended at d.
func (fp *faultProxy) held(t *testing.T, d time.Duration) {
	t.Helper()
	if !fp.clock.WaitTimers(1, 10*time.Second) {
		t.Fatal("no stage began to wait")
	}
	fp.clock.Advance(d - time.Nanosecond)
	if fp.clock.Timers() != 1 {
		t.Fatalf("the wait ended before %v", d)
	}
	fp.clock.Advance(time.Nanosecond)
	if n := fp.clock.Timers(); n != 0 {
		t.Fatalf("%d waits left after %v", n, d)
	}
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

// TestProxySlicer: a PUBLISH cut inside its 2-byte Remaining Length reaches the broker in two
// writes a second apart on the proxy's clock, and put together they are the device's bytes.
func TestProxySlicer(t *testing.T) {
	fp := startFaultProxy(t, "slicer dir=c2s type=PUBLISH at=remaining_length delay=1s")
	p := pub(t, "a/b", 1, 7, nil, strings.Repeat("p", 300))
	fp.device.Write(p)
	first := readN(t, fp.broker, 2)
	// The stage waits a second to write the rest: until then it has not been written.
	fp.held(t, time.Second)
	rest := readN(t, fp.broker, len(p)-2)
	if !bytes.Equal(append(first, rest...), p) {
		t.Fatal("the pieces are not the device's bytes")
	}
	if a := <-fp.applied; a.Did != "PUBLISH id 7 written in 2 pieces, cut inside its 2-byte Remaining Length, 1s apart" {
		t.Errorf("applied %+v", a)
	}
}

// TestProxyLatency: the broker's frame reaches the device once the latency has passed on the
// proxy's clock, not a nanosecond before.
func TestProxyLatency(t *testing.T) {
	fp := startFaultProxy(t, "latency dir=s2c d=200ms")
	ping := enc(t, &decode.Pingresp{Base: v5})
	fp.broker.Write(ping)
	fp.held(t, 200*time.Millisecond)
	if got := readN(t, fp.device, 2); !bytes.Equal(got, ping) {
		t.Errorf("device got % x", got)
	}
}

// TestProxyReset: the device and the broker both see a reset, and the close record says the
// proxy reset the connection by the fault.
func TestProxyReset(t *testing.T) {
	fp := startFaultProxy(t, "reset dir=s2c type=PINGRESP name=rst")
	fp.broker.Write(enc(t, &decode.Pingresp{Base: v5}))
	for name, c := range map[string]net.Conn{"device": fp.device, "broker": fp.broker} {
		n, err := c.Read(make([]byte, 16))
		if n != 0 || !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s read %d bytes, %v; want a reset", name, n, err)
		}
	}
	end := fp.ends.next(t)
	if end.By != stream.Proxy || end.How != stream.RST || !strings.Contains(end.Detail, "fault rst: connection reset at PINGRESP") {
		t.Errorf("end %+v", end)
	}
}

// TestProxyHalfClose: the broker gets EOF while the device keeps receiving from it; the
// connection ends when the broker closes too.
func TestProxyHalfClose(t *testing.T) {
	fp := startFaultProxy(t, "half_close dir=c2s type=PINGREQ")
	fp.device.Write(enc(t, &decode.Pingreq{Base: v5}))
	if n, err := fp.broker.Read(make([]byte, 16)); n != 0 || err != io.EOF {
		t.Fatalf("broker read %d bytes, %v; want EOF", n, err)
	}
	ping := enc(t, &decode.Pingresp{Base: v5})
	fp.broker.Write(ping)
	if got := readN(t, fp.device, 2); !bytes.Equal(got, ping) {
		t.Fatalf("device got % x", got)
	}
	fp.broker.Close()
	if n, err := fp.device.Read(make([]byte, 16)); n != 0 || err != io.EOF {
		t.Errorf("device read %d bytes, %v; want EOF", n, err)
	}
	end := fp.ends.next(t)
	if end.By != stream.Proxy || end.How != stream.FIN || !strings.Contains(end.Detail, "the proxy half-closed towards the server") {
		t.Errorf("end %+v", end)
	}
}

// TestProxySlowClose: the device's FIN reaches the broker once the slow close has passed.
func TestProxySlowClose(t *testing.T) {
	fp := startFaultProxy(t, "slow_close dir=c2s d=2s")
	fp.device.(*net.TCPConn).CloseWrite()
	fp.held(t, 2*time.Second)
	if n, err := fp.broker.Read(make([]byte, 16)); n != 0 || err != io.EOF {
		t.Errorf("broker read %d bytes, %v; want EOF", n, err)
	}
}

// TestProxyCloseInterruptsWait: closing a connection whose frame a latency holds for an hour
// ends it at once; the held frame is not sent.
func TestProxyCloseInterruptsWait(t *testing.T) {
	fp := startFaultProxy(t, "latency dir=s2c d=1h")
	fp.broker.Write(enc(t, &decode.Pingresp{Base: v5}))
	if !fp.clock.WaitTimers(1, 10*time.Second) {
		t.Fatal("no stage began to wait")
	}
	if _, err := fp.srv.CloseConn(1, nil, ""); err != nil {
		t.Fatal(err)
	}
	if n, err := fp.device.Read(make([]byte, 16)); n != 0 {
		t.Errorf("device read %d bytes, %v", n, err)
	}
	if end := fp.ends.next(t); end.By != stream.Proxy {
		t.Errorf("end %+v", end)
	}
}

// TestProxyTransports: over TLS and WebSocket, a reset is a TCP reset beneath them (no
// close_notify or close frame first: the device reads a reset, not an end); a half-close is
// theirs: TLS close_notify, after which the device can still send, or a WebSocket close frame,
// which the device answers with its own, ending the other direction too; a slicer's pieces
// are each their own WebSocket message.
func TestProxyTransports(t *testing.T) {
	ping := enc(t, &decode.Pingresp{Base: v5})
	for _, tr := range []stream.Transport{stream.TLS, stream.WebSocket} {
		t.Run(tr.String()+"/reset", func(t *testing.T) {
			fp := startFaultProxyOver(t, tr, "reset dir=s2c type=PINGRESP")
			fp.broker.Write(ping)
			var err error
			if tr == stream.WebSocket {
				_, _, err = fp.ws.ReadMessage()
			} else {
				_, err = fp.device.Read(make([]byte, 16))
			}
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("device read: %v; want a reset", err)
			}
		})
		t.Run(tr.String()+"/half_close", func(t *testing.T) {
			fp := startFaultProxyOver(t, tr, "half_close dir=s2c type=PINGRESP")
			fp.broker.Write(ping)
			if tr == stream.WebSocket {
				_, _, err := fp.ws.ReadMessage()
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
					t.Fatalf("device read: %v; want a close frame", err)
				}
				// A WebSocket peer answers a close frame with its own and sends no more (RFC
				// 6455 5.5.1): that close reaches the broker.
				if n, err := fp.broker.Read(make([]byte, 16)); n != 0 || err != io.EOF {
					t.Errorf("broker read %d bytes, %v; want EOF", n, err)
				}
				return
			}
			if n, err := fp.device.Read(make([]byte, 16)); n != 0 || err != io.EOF {
				t.Fatalf("device read %d bytes, %v; want EOF (close_notify)", n, err)
			}
			fp.device.Write([]byte{0xC0, 0})
			if got := readN(t, fp.broker, 2); !bytes.Equal(got, []byte{0xC0, 0}) {
				t.Errorf("broker got % x, want the device's PINGREQ", got)
			}
		})
	}
	t.Run("WebSocket/slicer", func(t *testing.T) {
		fp := startFaultProxyOver(t, stream.WebSocket, "slicer dir=s2c type=PUBLISH at=remaining_length")
		p := pub(t, "a/b", 0, 0, nil, strings.Repeat("p", 300))
		fp.broker.Write(p)
		var got [][]byte
		for n := 0; n < len(p); {
			_, m, err := fp.ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			got, n = append(got, m), n+len(m)
		}
		if len(got) != 2 || len(got[0]) != 2 || !bytes.Equal(bytes.Join(got, nil), p) {
			t.Errorf("messages of %d pieces, first %d bytes; same bytes: %v", len(got), len(got[0]), bytes.Equal(bytes.Join(got, nil), p))
		}
	})
}
