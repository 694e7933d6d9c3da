package mqttclient_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/mqttclient"
	"github.com/mqscope/mqscope/stream"
)

// A WebSocket broker that sends a CONNACK and then ends its TCP connection without a close
// frame has closed the connection (a FIN), as the proxy reads it: Next says ErrClosed after the
// CONNACK, not a read failure.
func TestWebSocketEndWithoutCloseFrame(t *testing.T) {
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		if _, _, err := ws.ReadMessage(); err != nil { // the CONNECT
			ws.NetConn().Close()
			return
		}
		ws.WriteMessage(websocket.BinaryMessage, []byte{0x20, 0x03, 0x00, 0x00, 0x00})
		ws.NetConn().Close() // no close frame
	}))
	defer srv.Close()

	c := dialWS(t, srv)
	if _, err := c.Connect(ctxT(t), &decode.Connect{ClientID: "ws"}); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if _, err := c.Next(ctxT(t)); !errors.Is(err, mqttclient.ErrClosed) {
		t.Fatalf("after the TCP end: %v, want ErrClosed", err)
	}
}

// dialWS connects a client to the WebSocket server srv, closed when the test ends.
func dialWS(t *testing.T, srv *httptest.Server) *mqttclient.Client {
	t.Helper()
	ep, err := stream.ParseEndpoint("ws://"+strings.TrimPrefix(srv.URL, "http://")+"/mqtt", "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := mqttclient.Dial(ctxT(t), ep, mqttclient.DialOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
