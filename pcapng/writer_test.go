package pcapng

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/stream"
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
			must(t, s.Write(stream.C2S, t0.Add(time.Millisecond), connect))
			must(t, s.Write(stream.S2C, t0.Add(2*time.Millisecond), []byte{0x20, 0x02, 0x00, 0x00}))
			pub := append([]byte{0x30, 0xcb, 0x01, 0x00, 0x01, 'a'}, bytes.Repeat([]byte{'x'}, 200)...)
			pub[1], pub[2] = byte(len(pub)-3)|0x80, byte((len(pub)-3)>>7)
			must(t, s.Write(stream.C2S, t0.Add(3*time.Millisecond), pub))
			must(t, s.Write(stream.C2S, t0.Add(4*time.Millisecond), []byte{0xe0, 0x00}))
			must(t, s.Close(stream.C2S, t0.Add(5*time.Millisecond)))
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
