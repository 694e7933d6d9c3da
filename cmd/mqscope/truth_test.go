package main

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// TestReadVersionFromEvidence cuts the CONNECT out of a real MQTT 3.1.1 capture: the version
// comes from the 2-byte CONNACK (not a default of 5, which made that CONNACK malformed), the
// output says so, and --version forces it.
func TestReadVersionFromEvidence(t *testing.T) {
	editcap := peer.Require(t, "editcap")
	cut := filepath.Join(t.TempDir(), "no-connect.pcapng")
	// Frame 14 is the CONNECT of the second connection (see testdata/captures/README.md).
	if b, err := exec.Command(editcap, "../../testdata/captures/mqtt311-session.pcapng", cut, "14").CombinedOutput(); err != nil {
		t.Fatalf("editcap: %v: %s", err, b)
	}
	code, out, errOut := runCmd(t, "", "read", "--format", "jsonl", "--port", "18832", cut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var conn2 []map[string]any
	for _, r := range jsonLines(t, out) {
		if r["conn"] == 2.0 {
			conn2 = append(conn2, r)
		}
	}
	decided := false
	for _, r := range conn2 {
		notes, _ := r["notes"].([]any)
		for _, n := range notes {
			n := n.(map[string]any)
			if n["level"] == "error" {
				t.Errorf("%v #%v: %v", r["type"], r["index"], n["text"])
			}
			if n["rule"] == "MQSCOPE-VERSION" {
				decided = r["type"] == "CONNACK"
			}
		}
		switch {
		case r["kind"] == "packet" && r["type"] != "PUBLISH" && decided && r["version"] != 4.0:
			t.Errorf("%v #%v decoded as version %v", r["type"], r["index"], r["version"])
		case r["kind"] == "close" && (r["version"] != 4.0 || r["version_from"] != "packets"):
			t.Errorf("close record: version %v from %v", r["version"], r["version_from"])
		}
	}
	if !decided {
		t.Errorf("the CONNACK does not say it told the version:\n%v", conn2)
	}
	if len(conn2) < 5 {
		t.Errorf("%d records of connection 2, want the PUBLISH, CONNACK, PUBACK, DISCONNECT and close", len(conn2))
	}
	_, sum, _ := runCmd(t, "", "read", "--summary", "--port", "18832", cut)
	if !strings.Contains(sum, "MQTT 3.1.1 (no CONNECT seen: told by the packets)") {
		t.Errorf("summary does not say how the version was decided:\n%s", sum)
	}
	_, sum, _ = runCmd(t, "", "read", "--summary", "--version", "4", "--port", "18832", cut)
	if !strings.Contains(sum, "MQTT 3.1.1 (from --version: no CONNECT seen)") {
		t.Errorf("--version 4: summary:\n%s", sum)
	}
	for _, args := range [][]string{{"read", cut}, {"capture", "-i", "lo"}, {"proxy", "--upstream", "embedded"}} {
		code, _, errOut := runCmd(t, "", append(args, "--version", "6")...)
		if code != exitUsage || !strings.Contains(errOut, "--version 6: want 3, 4 or 5") {
			t.Errorf("%s --version 6: exit %d, %s", args[0], code, errOut)
		}
	}
}

// TestReadUnshownCounted: connections to the MQTT port that cannot be shown (HTTP that is not
// a WebSocket upgrade to MQTT, an upgrade the server refused) are counted at the end, with why.
func TestReadUnshownCounted(t *testing.T) {
	p := filepath.Join(t.TempDir(), "unshown.pcapng")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	sw, _ := pcapng.NewStreamWriter(f)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	srv := netip.MustParseAddrPort("192.0.2.1:1883")
	s, _ := sw.Open(netip.MustParseAddrPort("192.0.2.2:40000"), srv, now)
	s.Write(stream.C2S, now, []byte("GET /status HTTP/1.1\r\nHost: broker\r\n\r\n"))
	s.Write(stream.S2C, now, []byte("HTTP/1.1 404 Not Found\r\n\r\n"))
	s.Close(stream.C2S, now)
	s, _ = sw.Open(netip.MustParseAddrPort("192.0.2.2:40001"), srv, now)
	s.Write(stream.C2S, now, []byte("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"))
	s.Write(stream.S2C, now, []byte("HTTP/1.1 403 Forbidden\r\n\r\n"))
	s.Close(stream.C2S, now)
	sw.Flush()
	f.Close()
	_, _, errOut := runCmd(t, "", "read", p)
	want := "connections to MQTT ports not shown: 2 (HTTP that is not a WebSocket upgrade to MQTT: 1; a WebSocket upgrade the server did not accept: 1)"
	if !strings.Contains(errOut, want) {
		t.Errorf("stderr %q\nwant %q", errOut, want)
	}
}
