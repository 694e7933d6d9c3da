package wsconn

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// serve starts a WebSocket server that runs peer on each connection and returns a Conn to it.
func serve(t *testing.T, peer func(ws *websocket.Conn)) *Conn {
	t.Helper()
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		peer(ws)
	}))
	t.Cleanup(srv.Close)
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+strings.TrimPrefix(srv.URL, "http://"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := New(ws)
	t.Cleanup(func() { c.Close() })
	return c
}

// The stream is the messages' data, whatever their framing (an empty message adds nothing);
// how the peer ends decides between EOF and an error.
func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(ws *websocket.Conn)
		eof  bool
	}{
		{"close frame", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		}, true},
		{"going away", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""))
		}, true},
		{"no close frame", func(ws *websocket.Conn) { ws.NetConn().Close() }, true},
		{"protocol error", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseProtocolError, "bad"))
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := serve(t, func(ws *websocket.Conn) {
				for _, m := range []string{"\xC0", "", "\x00\xD0\x00"} {
					ws.WriteMessage(websocket.BinaryMessage, []byte(m))
				}
				tc.end(ws)
			})
			b, err := io.ReadAll(c)
			if string(b) != "\xC0\x00\xD0\x00" {
				t.Errorf("read %q", b)
			}
			var ce *websocket.CloseError
			switch {
			case tc.eof && err != nil:
				t.Errorf("the end read as %v, not EOF", err)
			case !tc.eof && !errors.As(err, &ce):
				t.Errorf("the end read as %v, want the close error", err)
			}
		})
	}
}

// Each Write is one binary message.
// A text message ends the stream with ErrTextMessage (MQTT-6.0.0-1), after the binary data
// before it; its bytes are not read as MQTT, nor the binary messages after it.
func TestReadText(t *testing.T) {
	c := serve(t, func(ws *websocket.Conn) {
		ws.WriteMessage(websocket.BinaryMessage, []byte{0xC0, 0x00})
		ws.WriteMessage(websocket.TextMessage, []byte{0xD0, 0x00})
		ws.WriteMessage(websocket.BinaryMessage, []byte{0xE0, 0x00})
		ws.ReadMessage() // until the client goes
	})
	got, err := io.ReadAll(c)
	if !errors.Is(err, ErrTextMessage) || string(got) != "\xC0\x00" {
		t.Errorf("read %q, %v; want the PINGREQ, then ErrTextMessage", got, err)
	}
	if !strings.Contains(err.Error(), "MQTT-6.0.0-1") {
		t.Errorf("error %q names no rule", err)
	}
	if n, err := c.Read(make([]byte, 16)); n != 0 || !errors.Is(err, ErrTextMessage) {
		t.Errorf("read after the text message: %d bytes, %v; want ErrTextMessage again", n, err)
	}
}

func TestWrite(t *testing.T) {
	got := make(chan string, 4)
	c := serve(t, func(ws *websocket.Conn) {
		for {
			typ, b, err := ws.ReadMessage()
			if err != nil {
				close(got)
				return
			}
			if typ != websocket.BinaryMessage {
				b = append([]byte("not binary: "), b...)
			}
			got <- string(b)
		}
	})
	for _, m := range []string{"\xC0\x00", "\x30\x03\x00\x01t"} {
		if n, err := c.Write([]byte(m)); n != len(m) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	c.CloseWrite()
	var msgs []string
	for m := range got {
		msgs = append(msgs, m)
	}
	if len(msgs) != 2 || msgs[0] != "\xC0\x00" || msgs[1] != "\x30\x03\x00\x01t" {
		t.Errorf("the peer read %q", msgs)
	}
}

// TestDial: Dial asks for the "mqtt" subprotocol, and a refused handshake's error says the
// HTTP status.
func TestDial(t *testing.T) {
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		if _, err := up.Upgrade(w, r, nil); err != nil {
			t.Error(err)
		}
	}))
	t.Cleanup(srv.Close)
	url := "ws://" + strings.TrimPrefix(srv.URL, "http://")
	ws, err := Dial(context.Background(), websocket.Dialer{}, url+"/mqtt")
	if err != nil {
		t.Fatal(err)
	}
	if p := ws.Subprotocol(); p != "mqtt" {
		t.Errorf("subprotocol %q, want mqtt", p)
	}
	ws.Close()
	_, err = Dial(context.Background(), websocket.Dialer{}, url+"/refuse")
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") || !errors.Is(err, websocket.ErrBadHandshake) {
		t.Errorf("refused handshake: %v", err)
	}
}
