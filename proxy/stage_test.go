package proxy

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// dropStage drops frames of one type and counts what it saw.
type dropStage struct {
	drop decode.Type
	mu   sync.Mutex
	seen []decode.Type
}

func (s *dropStage) Frame(f *Frame, emit func([]byte) error) error {
	s.mu.Lock()
	s.seen = append(s.seen, f.Type)
	s.mu.Unlock()
	if f.Type == s.drop {
		return nil
	}
	return emit(f.Bytes)
}

func TestStages(t *testing.T) {
	got := make(chan []byte, 1)
	addr := rawServer(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		got <- b
		c.Close()
	})
	st := &dropStage{drop: decode.PINGREQ}
	srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: addr},
		Stages: func(_ *stream.Conn, d stream.Dir, env StageEnv) []Stage {
			if d == stream.C2S && env.Now != nil && env.Rand != nil {
				return []Stage{st}
			}
			return nil
		}})
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	connect, _ := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "s"})
	ping := []byte{0xC0, 0x00}
	junk := []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0xC0, 0x00} // a malformed header, then what looks like PINGREQ
	for _, b := range connect {                                    // byte by byte: the stage still sees one frame
		c.Write([]byte{b})
		time.Sleep(time.Millisecond)
	}
	c.Write(ping)
	c.Write(junk)
	c.(*net.TCPConn).CloseWrite()
	select {
	case b := <-got:
		want := append(append([]byte{}, connect...), junk...)
		if !bytes.Equal(b, want) {
			t.Errorf("broker got % x\nwant % x", b, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing reached the broker")
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.seen) != 2 || st.seen[0] != decode.CONNECT || st.seen[1] != decode.PINGREQ {
		t.Errorf("stage saw %v", st.seen)
	}
}
