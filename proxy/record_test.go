package proxy

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// TestRecord: --record writes a pcapng that tshark decodes into the same MQTT packets.
func TestRecord(t *testing.T) {
	tshark := peer.Require(t, "tshark")
	path := filepath.Join(t.TempDir(), "session.pcapng")
	rec, err := pcapng.NewRecorder(path, netip.MustParseAddrPort("127.0.0.1:1884"), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	srv, err := New(Config{Listen: Endpoint{Transport: stream.TCP, Addr: "127.0.0.1:0"}, Embedded: true, Observers: []stream.Observer{rec, col}, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	pubSub(t, dialTCP(t, srv.Addr().String()), 5)
	// Both clients disconnected: stop once the proxy has seen both connections end, so that
	// the shutdown adds nothing to the recording.
	col.waitClosed(t, 1)
	col.waitClosed(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(srv.Upstream().Addr)
	out, err := exec.Command(tshark, "-r", path, "-d", "tcp.port=="+port+",mqtt", "-Y", "mqtt", "-T", "fields", "-e", "mqtt.msgtype", "-e", "mqtt.topic").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	counts := map[string]int{}
	topics := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, "\t")
		for _, typ := range strings.Split(f[0], ",") {
			counts[typ]++
		}
		if len(f) > 1 && f[1] != "" {
			for _, tp := range strings.Split(f[1], ",") {
				topics[tp]++
			}
		}
	}
	// 15 PUBLISH from the publisher, 15 to the subscriber; 2 CONNECT, 2 CONNACK.
	if counts["3"] != 30 || counts["1"] != 2 || counts["2"] != 2 || counts["8"] != 1 {
		t.Errorf("tshark counts by type: %v\n%s", counts, out)
	}
	if topics["mqscope/q1"] != 10 {
		t.Errorf("tshark topics: %v", topics)
	}
}
