package capture

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// TestStreamWriterConcurrent writes 20 connections from 40 goroutines (one per direction)
// and reads them back.
func TestStreamWriterConcurrent(t *testing.T) {
	var buf bytes.Buffer
	sw, err := pcapng.NewStreamWriter(&buf)
	must(t, err)
	var wg sync.WaitGroup
	c2s := append(append([]byte{}, connect...), publish("c/t", 5000)...)
	s2c := append(append([]byte{}, connack...), publish("s/t", 3000)...)
	for i := 0; i < 20; i++ {
		s, err := sw.Open(netip.AddrPortFrom(cli.Addr(), uint16(41000+i)), srv, ms(i))
		must(t, err)
		done := make(chan struct{}, 2)
		for d, b := range [][]byte{c2s, s2c} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; k < len(b); k += 700 {
					if err := s.Write(stream.Dir(d), ms(i+1), b[k:min(k+700, len(b))]); err != nil {
						t.Error(err)
					}
				}
				done <- struct{}{}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-done
			<-done
			if err := s.Close(stream.C2S, ms(100)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	must(t, sw.Flush())
	p := filepath.Join(t.TempDir(), "c.pcapng")
	must(t, os.WriteFile(p, buf.Bytes(), 0o644))
	r := analyze(t, Options{}, p)
	if len(r.conns) != 20 {
		t.Fatalf("%d connections, want 20", len(r.conns))
	}
	for _, c := range r.conns {
		if !bytes.Equal(c.data[0], c2s) || !bytes.Equal(c.data[1], s2c) {
			t.Errorf("connection %v: streams differ", c.info.Client)
		}
	}
}

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
