package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/internal/peer"
)

const limitsPcap = "../../testdata/captures/mqtt5-limits.pcapng"

// TestReplayLimits: the breaches of mqtt5-limits, played to a mosquitto configured like the
// capture's broker, get the captured DISCONNECTs (exit 0); to the embedded broker, which has no
// such limits, the first divergence is shown (exit 1).
func TestReplayLimits(t *testing.T) {
	m := peer.StartMosquitto(t, "max_packet_size 200", "max_topic_alias 2", "max_qos 1", "retain_available false", "max_inflight_messages 2")
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  []string
		err  string
	}{
		{"packet too large", []string{"--conn", "9", "--to", m.Addr}, 0,
			[]string{"← DISCONNECT  0x95 Packet too large", `replay of connection 9 ("limits-raw-big") to ` + m.Addr + ": 2 packets sent, 2 packets received; the broker answered as in the capture"}, ""},
		{"by filter", []string{"--filter", `type == "DISCONNECT" && reason_code == 0x9B`, "--to", m.Addr}, 0,
			[]string{"← DISCONNECT  0x9B QoS not supported", "replay of connection 10 "}, ""},
		{"by client id", []string{"--client", "limits-raw-retain", "--to", m.Addr}, 0,
			[]string{"← DISCONNECT  0x9A Retain not supported"}, ""},
		{"diverges", []string{"--conn", "9", "--to", "embedded"}, 1,
			[]string{"diverged: captured: DISCONNECT 0x95 after PUBLISH #3; replayed: nothing within 1s"},
			"mqscope: replay diverged: captured: DISCONNECT 0x95 after PUBLISH #3; replayed: nothing within 1s\n"},
		{"no match", []string{"--conn", "999", "--to", "embedded"}, 1, nil, "no connection with its CONNECT in the capture matches"},
		// Every connection has a CONNECT: the first is replayed. Its broker granted QoS 1 only.
		{"first of several", []string{"--filter", `type == "CONNECT"`, "--to", "embedded"}, 1,
			[]string{`replay of connection 1 ("limits-v5-sub-q2")`}, "replay diverged: captured: SUBACK 0x01 after SUBSCRIBE #3; replayed: SUBACK 0x02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"replay", limitsPcap, "--wait", "1s"}, tc.args...)
			code, out, errs := runCmd(t, "", args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s\n%s", code, tc.code, out, errs)
			}
			for _, s := range tc.out {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			if !strings.Contains(errs, tc.err) {
				t.Errorf("stderr lacks %q:\n%s", tc.err, errs)
			}
		})
	}
}

func TestReplayUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"no capture", []string{"replay"}, "replay needs a capture file"},
		{"no broker", []string{"replay", limitsPcap, "--conn", "9"}, "--to ADDR (a broker, or embedded) or --listen ADDR"},
		{"two selectors", []string{"replay", limitsPcap, "--conn", "9", "--client", "x", "--to", "embedded"}, "one of --conn, --client or --filter"},
		{"no selector", []string{"replay", limitsPcap, "--to", "embedded"}, "one of --conn, --client or --filter"},
		{"bad speed", []string{"replay", limitsPcap, "--conn", "9", "--to", "embedded", "--speed", "fast"}, `--speed "fast"`},
		{"profile without embedded", []string{"replay", limitsPcap, "--conn", "9", "--to", "127.0.0.1:1883", "--profile", "apsaramq"}, "--profile needs --to embedded"},
		{"bad filter", []string{"replay", limitsPcap, "--filter", "tpye == 1", "--to", "embedded"}, "unknown name tpye"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCmd(t, "", tc.args...)
			if code != 2 || !strings.Contains(errs, tc.err) {
				t.Errorf("exit %d, want 2; stderr lacks %q:\n%s", code, tc.err, errs)
			}
		})
	}
}

// TestReplaySelf: a session replayed into the embedded broker and recorded, then replayed from
// that recording into a fresh embedded broker, shows no divergence. The first replay rewrites
// the captured Topic Alias 1 (mosquitto granted 4, the embedded broker grants none), and shows
// that the embedded broker answers a QoS 1 PUBLISH with PUBACK 0x01, which PUBACK may not carry
// (mosquitto answered PUBACK).
func TestReplaySelf(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "self.pcapng")
	code, out, errs := runCmd(t, "", "replay", "../../testdata/captures/mqtt5-session.pcapng", "--client", "mqscope-alias",
		"--to", "embedded", "--wait", "1s", "--record", rec)
	if code != 1 || !strings.Contains(out, `remapped: PUBLISH #3: Topic Alias 1 (granted 4 in the capture, 0 now) → topic "mqscope/sensor/temperature"`) ||
		!strings.Contains(errs, "replay diverged: captured: PUBACK after PUBLISH #3; replayed: PUBACK 0x01") {
		t.Errorf("first replay: exit %d\n%s\n%s", code, out, errs)
	}
	if fi, err := os.Stat(rec); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("recording: %v %v", fi, err)
	}
	code, out, errs = runCmd(t, "", "replay", rec, "--conn", "1", "--to", "embedded", "--wait", "1s", "--format", "jsonl")
	if code != 0 {
		t.Fatalf("replay of the recording: exit %d\n%s\n%s", code, out, errs)
	}
	var last struct {
		Kind               string
		Diverged           bool
		Sent, Received     int
		Captured, Replayed []string
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	lines := 0
	for sc.Scan() {
		lines++
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
	}
	if last.Kind != "replay" || last.Diverged || last.Sent != 6 || strings.Join(last.Captured, "|") != strings.Join(last.Replayed, "|") || lines < 10 {
		t.Errorf("%d lines, last %+v", lines, last)
	}
}

// TestReplayListen: mqtt5-limits connection 9 served as the broker (--listen) to its own
// device side (--to): each side sees the other do what it did in the capture, and the device
// gets DISCONNECT 0x95.
func TestReplayListen(t *testing.T) {
	addr := peer.FreeAddr(t)
	var srvOut, srvErr peer.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"replay", limitsPcap, "--conn", "9", "--listen", addr, "--wait", "1s"}, strings.NewReader(""), &srvOut, &srvErr)
	}()
	if !srvErr.WaitFor(10*time.Second, func(s string) bool { return strings.Contains(s, "waiting for a device") }) {
		t.Fatalf("the server side did not start: %s", srvErr.String())
	}
	code, out, errs := runCmd(t, "", "replay", limitsPcap, "--conn", "9", "--to", addr, "--wait", "1s")
	if code != 0 || !strings.Contains(out, "← DISCONNECT  0x95 Packet too large") {
		t.Errorf("device side: exit %d\n%s\n%s", code, out, errs)
	}
	if c := <-done; c != 0 || !strings.Contains(srvOut.String(), `replay of connection 9 ("limits-raw-big") to a device on `+addr+": 2 packets sent, 2 packets received; the device sent what it sent in the capture") {
		t.Errorf("broker side: exit %d\n%s\n%s", c, srvOut.String(), srvErr.String())
	}
	if code, _, errs := runCmd(t, "", "replay", limitsPcap, "--conn", "9", "--listen", addr, "--to", "embedded"); code != 2 || !strings.Contains(errs, "not both") {
		t.Errorf("--listen with --to: exit %d, %s", code, errs)
	}
}
