package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/internal/wsconn"
	"github.com/mqscope/mqscope/stream"
)

// dialWS opens an MQTT-over-WebSocket connection to url with the given write buffer (small
// buffers make gorilla fragment messages into several frames).
func dialWS(t testing.TB, url string, writeBuf int) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, WriteBufferSize: writeBuf}
	ws, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	if resp.Header.Get("Sec-Websocket-Protocol") != "mqtt" {
		t.Errorf("subprotocol %q", resp.Header.Get("Sec-Websocket-Protocol"))
	}
	return ws
}

// startWSBroker runs mochi with a WebSocket listener (the upstream side of the WS tests), ready
// when it returns.
func startWSBroker(t *testing.T) string {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{Logger: nil})
	srv.AddHook(new(auth.AllowHook), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(newMochiWSListener(ln)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// mochiWSListener is a mochi listener of MQTT over WebSocket on a port bound before the broker
// starts, so that it accepts connections as soon as the broker serves (mochi's own WebSocket
// listener binds its port on a goroutine, and says nothing when it has): each connection is
// upgraded by gorilla's Upgrader with the "mqtt" subprotocol, as mochi's listener does, and
// its binary messages are the stream mochi reads.
type mochiWSListener struct {
	ln  net.Listener
	srv *http.Server
	// establish is mochi's, set by Serve before the server accepts anything.
	establish listeners.EstablishFn
}

func newMochiWSListener(ln net.Listener) *mochiWSListener {
	l := &mochiWSListener{ln: ln}
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	l.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		l.establish("ws", mochiWSConn{wsconn.New(ws)})
	})}
	return l
}

// mochiWSConn is a WebSocket connection as mochi's listener hands it to the broker: the stream
// in binary messages, and deadlines set on the connection beneath (mochi sets them from its
// reading goroutine while another writes, which gorilla's own deadlines do not allow).
type mochiWSConn struct{ *wsconn.Conn }

func (c mochiWSConn) SetDeadline(t time.Time) error      { return c.NetConn().SetDeadline(t) }
func (c mochiWSConn) SetReadDeadline(t time.Time) error  { return c.NetConn().SetReadDeadline(t) }
func (c mochiWSConn) SetWriteDeadline(t time.Time) error { return c.NetConn().SetWriteDeadline(t) }

func (l *mochiWSListener) Init(*slog.Logger) error { return nil }
func (l *mochiWSListener) ID() string              { return "ws" }
func (l *mochiWSListener) Address() string         { return l.ln.Addr().String() }
func (l *mochiWSListener) Protocol() string        { return "ws" }

func (l *mochiWSListener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	l.srv.Serve(l.ln)
}

func (l *mochiWSListener) Close(closeClients listeners.CloseFn) {
	l.srv.Close()
	closeClients("ws")
}

func TestWebSocket(t *testing.T) {
	t.Run("device-ws-to-tcp", func(t *testing.T) {
		srv := startProxy(t, Config{Listen: Endpoint{Transport: stream.WebSocket, Addr: "127.0.0.1:0", Path: "/mqtt"}, Upstream: Endpoint{Transport: stream.TCP, Addr: broker(t, "mosquitto")}})
		url := "ws://" + srv.Addr().String() + "/mqtt"
		pubSub(t, func() net.Conn { return newWSConn(dialWS(t, url, 4096)) }, 10)
	})
	t.Run("tcp-to-broker-ws", func(t *testing.T) {
		srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.WebSocket, Addr: startWSBroker(t), Path: "/"}})
		pubSub(t, dialTCP(t, srv.Addr().String()), 10)
	})
	t.Run("wss-both", func(t *testing.T) {
		ca := newTestCA(t)
		// device --wss--> back --wss--> front --tcp--> embedded broker: WSS on both sides of back.
		front := startProxy(t, Config{Listen: Endpoint{Transport: stream.WSS, Addr: "127.0.0.1:0", Path: "/mqtt"}, ListenTLS: ca.ServerConfig("localhost"), Embedded: true})
		back := startProxy(t, Config{Listen: Endpoint{Transport: stream.WSS, Addr: "127.0.0.1:0", Path: "/mqtt"}, ListenTLS: ca.ServerConfig("localhost"),
			Upstream: Endpoint{Transport: stream.WSS, Addr: front.Addr().String(), Path: "/mqtt"}, UpstreamTLS: &tls.Config{RootCAs: ca.pool(), ServerName: "localhost"}})
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, TLSClientConfig: clientTLS(nil, Endpoint{Addr: "localhost:1"})}
		d.TLSClientConfig.RootCAs = ca.pool()
		pubSub(t, func() net.Conn {
			ws, _, err := d.Dial("wss://"+back.Addr().String()+"/mqtt", nil)
			if err != nil {
				t.Fatal(err)
			}
			return newWSConn(ws)
		}, 10)
	})
	t.Run("framing-and-ping", func(t *testing.T) {
		// MQTT packets split across messages, several in one message, messages fragmented into
		// many frames, and a ping: the broker sees exactly the MQTT bytes.
		tp := startTap(t, broker(t, "mosquitto"))
		srv := startProxy(t, Config{Listen: Endpoint{Transport: stream.WebSocket, Addr: "127.0.0.1:0", Path: "/mqtt"}, Upstream: Endpoint{Transport: stream.TCP, Addr: tp.addr()}})
		ws := dialWS(t, "ws://"+srv.Addr().String()+"/mqtt", 64) // 64-byte frames
		defer ws.Close()
		pong := make(chan string, 1)
		ws.SetPongHandler(func(s string) error { pong <- s; return nil })
		var sent []byte
		connect, _ := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: "wsframes"})
		sub, _ := decode.Encode(nil, &decode.Subscribe{Base: decode.Base{Version: decode.V5}, PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "ws/#", QoS: 0}}})
		big := bytes.Repeat([]byte("0123456789"), 3000) // 30 kB: hundreds of frames
		pub, _ := decode.Encode(nil, &decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: "ws/big", Payload: big})
		send := func(b []byte) {
			if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, b...)
		}
		send(append(connect, sub...)) // two packets in one message
		if err := ws.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		send(pub[:3]) // one packet over three messages
		send(pub[3:1000])
		send(pub[1000:])
		// Read: CONNACK, SUBACK, then our PUBLISH back, in whatever framing.
		var got []byte
		want := len(pub)
		deadline := time.Now().Add(10 * time.Second)
		ws.SetReadDeadline(deadline)
		fr := decode.NewFramer(0)
		var frames [][]byte
		for len(frames) < 3 {
			_, r, err := ws.NextReader()
			if err != nil {
				t.Fatalf("read: %v (frames %d)", err, len(frames))
			}
			b, _ := io.ReadAll(r)
			got = append(got, b...)
			fr.Write(b)
			for {
				f, err := fr.Next()
				if err != nil || f == nil {
					break
				}
				frames = append(frames, f)
			}
		}
		select {
		case s := <-pong:
			if s != "hello" {
				t.Errorf("pong %q", s)
			}
		default:
			t.Error("no pong")
		}
		if len(frames[2]) != want || !bytes.Equal(frames[2][len(frames[2])-len(big):], big) {
			t.Errorf("PUBLISH came back as %d bytes, want %d", len(frames[2]), want)
		}
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		ws.Close()
		toBroker, fromBroker := tp.conn(0)
		if !bytes.Equal(toBroker, sent) {
			t.Errorf("broker got %d bytes, device sent %d", len(toBroker), len(sent))
		}
		if !bytes.HasPrefix(fromBroker, got) {
			t.Errorf("device got bytes the broker did not send")
		}
	})
}

// TestWebSocketShutdownStuckDevice: a WebSocket device that stops reading while the broker
// floods it leaves the proxy blocked in a write; shutdown must unblock that write with its own
// deadline (the WebSocket library resets the connection's deadline before every frame, so one
// set underneath it does not hold) and end well before its context does.
func TestWebSocketShutdownStuckDevice(t *testing.T) {
	// The broker floods the device, which reads nothing, until one of its writes has waited
	// 500 ms (every buffer on the way is full); then it goes on writing, blocked.
	stalled := make(chan struct{})
	up := peer.Serve(t, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 256)
		if _, err := c.Read(buf); err != nil { // the CONNECT
			return
		}
		connack, _ := decode.Encode(nil, &decode.Connack{Base: decode.Base{Version: decode.V5}})
		pub, _ := decode.Encode(nil, &decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: "flood", Payload: make([]byte, 32<<10)})
		if _, err := c.Write(connack); err != nil {
			return
		}
		waited := false
		for {
			if !waited {
				c.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
			}
			n, err := c.Write(pub)
			if !waited && errors.Is(err, os.ErrDeadlineExceeded) {
				waited = true
				close(stalled)
				c.SetWriteDeadline(time.Time{})
				_, err = c.Write(pub[n:])
			}
			if err != nil {
				return
			}
		}
	})
	srv, err := New(Config{Listen: Endpoint{Transport: stream.WebSocket, Addr: "127.0.0.1:0", Path: "/mqtt"}, Upstream: Endpoint{Transport: stream.TCP, Addr: up}, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	dev := dialWS(t, "ws://"+srv.Addr().String()+"/mqtt", 4096)
	defer dev.Close()
	connect, _ := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, ClientID: "stuck"})
	if err := dev.WriteMessage(websocket.BinaryMessage, connect); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stalled:
	case <-time.After(20 * time.Second):
		t.Fatal("the flood towards a device that reads nothing never stalled")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v after %v: the write to the stuck device was not unblocked", err, time.Since(start).Round(time.Millisecond))
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// wsDevice starts a WebSocket proxy in front of the embedded broker and dials it: it returns
// the proxy's collector, the device's connection, and a CONNECT of client identifier id for
// it to send.
func wsDevice(t *testing.T, id string) (*collector, *websocket.Conn, []byte) {
	t.Helper()
	col := newCollector()
	srv := startProxy(t, Config{Listen: Endpoint{Transport: stream.WebSocket, Addr: "127.0.0.1:0", Path: "/mqtt"}, Embedded: true, Observers: []stream.Observer{col}})
	ws := dialWS(t, "ws://"+srv.Addr().String()+"/mqtt", 4096)
	connect, err := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: id})
	if err != nil {
		t.Fatal(err)
	}
	return col, ws, connect
}

// TestWebSocketDeviceEndsWithoutCloseFrame: a WebSocket device that closes its TCP connection
// without a close frame (the library's 1006) has closed the connection, as with one: the close
// record says the client closed (EOF), not that reading failed.
func TestWebSocketDeviceEndsWithoutCloseFrame(t *testing.T) {
	col, ws, connect := wsDevice(t, "ws-fin")
	if err := ws.WriteMessage(websocket.BinaryMessage, connect); err != nil {
		t.Fatal(err)
	}
	if _, b, err := ws.ReadMessage(); err != nil || len(b) == 0 || decode.Type(b[0]>>4) != decode.CONNACK {
		t.Fatalf("read % x, %v; want the CONNACK", b, err)
	}
	ws.UnderlyingConn().Close() // all read: a FIN, no close frame
	by, reason := col.waitClosed(t, 1)
	if by != "client" || !strings.Contains(reason, "client closed (EOF)") {
		t.Errorf("closed by %q: %q; want the client's EOF", by, reason)
	}
}

// TestWebSocketTextMessage: a device that sends MQTT in a text message breaks MQTT-6.0.0-1;
// the proxy closes its connection, as the standard has the receiver do, and the close says
// why, by the rule.
func TestWebSocketTextMessage(t *testing.T) {
	col, ws, connect := wsDevice(t, "ws-text")
	if err := ws.WriteMessage(websocket.TextMessage, connect); err != nil {
		t.Fatal(err)
	}
	if by, reason := col.waitClosed(t, 1); by != "client" || !strings.Contains(reason, "MQTT-6.0.0-1") {
		t.Errorf("closed by %q: %q; want the client, MQTT-6.0.0-1", by, reason)
	}
}
