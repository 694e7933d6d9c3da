package capture

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqscope/mqscope/internal/peer"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func TestStreamWriterTshark(t *testing.T) {
	tshark := peer.Require(t, "tshark")
	for _, tc := range []struct {
		name           string
		client, server string
	}{
		{"ipv4", "192.0.2.10:50000", "192.0.2.1:1883"},
		{"ipv6", "[2001:db8::10]:50000", "[2001:db8::1]:1883"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			sw, err := NewStreamWriter(&buf)
			if err != nil {
				t.Fatal(err)
			}
			sw.MSS = 100
			s, err := sw.Open(netip.MustParseAddrPort(tc.client), netip.MustParseAddrPort(tc.server), t0)
			if err != nil {
				t.Fatal(err)
			}
			connect := []byte{0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x04, 't', 'e', 's', 't'}
			connect[1] = byte(len(connect) - 2)
			must(t, s.Write(ClientToServer, t0.Add(time.Millisecond), connect))
			must(t, s.Write(ServerToClient, t0.Add(2*time.Millisecond), []byte{0x20, 0x02, 0x00, 0x00}))
			pub := append([]byte{0x30, 0xcb, 0x01, 0x00, 0x01, 'a'}, bytes.Repeat([]byte{'x'}, 200)...)
			pub[1], pub[2] = byte(len(pub)-3)|0x80, byte((len(pub)-3)>>7)
			must(t, s.Write(ClientToServer, t0.Add(3*time.Millisecond), pub))
			must(t, s.Write(ClientToServer, t0.Add(4*time.Millisecond), []byte{0xe0, 0x00}))
			must(t, s.Close(ClientToServer, t0.Add(5*time.Millisecond)))
			must(t, sw.Flush())
			file := filepath.Join(t.TempDir(), "w.pcapng")
			must(t, os.WriteFile(file, buf.Bytes(), 0o644))
			out, err := exec.Command(tshark, "-r", file, "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
				"-T", "fields", "-e", "mqtt.msgtype", "-Y", "mqtt").Output()
			if err != nil {
				t.Fatalf("tshark: %v", err)
			}
			if got, want := strings.Join(strings.Fields(string(out)), " "), "1 2 3 14"; got != want {
				t.Errorf("tshark sees message types %q, want %q", got, want)
			}
			bad := "tcp.analysis.flags || _ws.malformed || tcp.checksum.status == 0 || ip.checksum.status == 0"
			out, err = exec.Command(tshark, "-r", file, "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
				"-Y", bad).Output()
			if err != nil {
				t.Fatalf("tshark: %v", err)
			}
			if len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("tshark finds faults in the written packets:\n%s", out)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestStreamWriterConcurrent writes 20 connections from 40 goroutines (one per direction)
// and reads them back.
func TestStreamWriterConcurrent(t *testing.T) {
	var buf bytes.Buffer
	sw, err := NewStreamWriter(&buf)
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
					if err := s.Write(Dir(d), ms(i+1), b[k:min(k+700, len(b))]); err != nil {
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
			if err := s.Close(ClientToServer, ms(100)); err != nil {
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
		if !bytes.Equal(c.stream[0], c2s) || !bytes.Equal(c.stream[1], s2c) {
			t.Errorf("connection %v: streams differ", c.info.Client)
		}
	}
}
