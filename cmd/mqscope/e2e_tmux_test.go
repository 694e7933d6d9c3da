package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/internal/peer"
)

// tmuxPane drives a program in a tmux session of its own (its own tmux server, on a socket
// of the test's): keys in with send-keys, the screen out with capture-pane.
type tmuxPane struct {
	t      *testing.T
	tmux   string
	socket string
}

func (p *tmuxPane) run(args ...string) (string, error) {
	out, err := exec.Command(p.tmux, append([]string{"-S", p.socket}, args...)...).CombinedOutput()
	return string(out), err
}

// keys sends tmux key names (Enter, Tab, C-u, or a character).
func (p *tmuxPane) keys(keys ...string) {
	p.t.Helper()
	if out, err := p.run(append([]string{"send-keys", "-t", "e2e"}, keys...)...); err != nil {
		p.t.Fatalf("send-keys %q: %v %s", keys, err, out)
	}
}

// typeText types s literally.
func (p *tmuxPane) typeText(s string) {
	p.t.Helper()
	if out, err := p.run("send-keys", "-t", "e2e", "-l", s); err != nil {
		p.t.Fatalf("send-keys -l %q: %v %s", s, err, out)
	}
}

func (p *tmuxPane) screen() string {
	out, err := p.run("capture-pane", "-p", "-t", "e2e")
	if err != nil {
		return ""
	}
	return out
}

// waitFor polls the screen until ok holds, failing the test with the last screen after 20 s.
func (p *tmuxPane) waitFor(what string, ok func(screen string) bool) string {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var s string
	for time.Now().Before(deadline) {
		if s = p.screen(); ok(s) {
			return s
		}
		<-tick.C
	}
	p.t.Fatalf("the screen never showed %s; last screen:\n%s", what, s)
	return ""
}

// waitText waits until the screen holds every one of texts.
func (p *tmuxPane) waitText(texts ...string) string {
	p.t.Helper()
	return p.waitFor(fmt.Sprintf("%q", texts), func(s string) bool {
		for _, x := range texts {
			if !strings.Contains(s, x) {
				return false
			}
		}
		return true
	})
}

// buildMqscope builds the binary under test into a temporary directory.
func buildMqscope(t *testing.T) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to build mqscope with")
		}
	}
	bin := filepath.Join(t.TempDir(), "mqscope")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestUIEndToEndTmux runs the built mqscope proxy --ui in front of mosquitto in tmux and uses it
// as a person would: it filters the packets, selects one and reads its tree and bytes, applies
// a fault from the palette to a publisher's connection and finds mosquitto's DISCONNECT 0x94 with
// its cause link, then intercepts a PUBLISH, edits its payload in the form and forwards it, and
// mosquitto_sub receives the edited message.
func TestUIEndToEndTmux(t *testing.T) {
	tmux := peer.Require(t, "tmux")
	subBin := peer.Require(t, "mosquitto_sub")
	pubBin := peer.Require(t, "mosquitto_pub")
	mosq := peer.StartMosquitto(t)
	bin := buildMqscope(t)
	listen := peer.FreeAddr(t)
	host, port, _ := net.SplitHostPort(listen)
	dir := t.TempDir()

	p := &tmuxPane{t: t, tmux: tmux, socket: filepath.Join(dir, "tmux.sock")}
	cmdline := fmt.Sprintf("%s proxy --ui --upstream %s --listen %s 2>%s", bin, mosq.Addr, listen, filepath.Join(dir, "stderr"))
	if out, err := p.run("new-session", "-d", "-s", "e2e", "-x", "200", "-y", "50", cmdline); err != nil {
		t.Fatalf("tmux new-session: %v %s", err, out)
	}
	t.Cleanup(func() { p.run("kill-server") })
	p.waitText("proxying: point devices at " + listen)

	common := []string{"-h", host, "-p", port, "-V", "mqttv5"}
	// The subscriber: connection 1.
	subOut := &peer.Buffer{}
	sub := exec.Command(subBin, append(common, "-t", "demo/#", "-v")...)
	sub.Stdout, sub.Stderr = subOut, subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Process.Kill(); sub.Wait() })
	p.waitText("← SUBACK")

	// A publisher that stays connected, one message per line: connection 2.
	pub := exec.Command(pubBin, append(common, "-q", "1", "-t", "demo/x", "-l")...)
	pubIn, err := pub.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pubOut := &peer.Buffer{}
	pub.Stdout, pub.Stderr = pubOut, pubOut
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pubIn.Close(); pub.Process.Kill(); pub.Wait() })
	io.WriteString(pubIn, "first\n")
	if !subOut.WaitFor(20*time.Second, func(s string) bool { return strings.Contains(s, "demo/x first") }) {
		t.Fatalf("mosquitto_sub got %q", subOut.String())
	}
	p.waitText("→ PUBLISH", "demo/x")

	// Filter: only PUBLISH packets are listed.
	p.keys("/")
	p.typeText(`type == "PUBLISH"`)
	p.waitText("✓ valid")
	p.keys("Enter")
	p.waitFor("the PUBLISH packets alone", func(s string) bool {
		return strings.Contains(s, "→ PUBLISH") && !strings.Contains(s, "→ CONNECT") && !strings.Contains(s, "← SUBACK")
	})

	// Select the first: its tree and its bytes (0x32: PUBLISH at QoS 1).
	p.keys("g")
	p.waitText("#3 PUBLISH client → server, connection 2", `topic: "demo/x"`, `payload: "first"`, "0000  32 ")

	// The fault palette on connection 2: "alias" (first in the list), prefilled with the
	// negotiated maximum + 1; mosquitto answers the next PUBLISH with DISCONNECT 0x94.
	p.keys("!")
	p.waitText("fault for connection 2", "alias ")
	p.keys("Enter")
	p.waitText("rule: alias to=topic_alias_maximum+1 count=1")
	p.keys("Enter")
	p.waitText("connection 2: fault alias to=topic_alias_maximum+1 count=1 applied")
	io.WriteString(pubIn, "second\n")
	p.keys("/", "C-u")
	p.typeText(`type == "DISCONNECT"`)
	p.keys("Enter")
	p.waitText("← DISCONNECT", "0x94")
	p.keys("g")
	p.waitText("DISCONNECT server → client, connection 2", "caused by PUBLISH")

	// Intercept a PUBLISH on its way to the broker, edit its payload, forward it.
	p.keys("i")
	p.typeText(`topic == "demo/y" && dir == "c2s"`)
	p.keys("Enter")
	p.waitText("intercepting topic ==")
	pub2Out := &peer.Buffer{}
	pub2 := exec.Command(pubBin, append(common, "-q", "1", "-t", "demo/y", "-m", "original")...)
	pub2.Stdout, pub2.Stderr = pub2Out, pub2Out
	if err := pub2.Start(); err != nil {
		t.Fatal(err)
	}
	var pub2Err error
	pub2Done := make(chan struct{})
	go func() { pub2Err = pub2.Wait(); close(pub2Done) }()
	t.Cleanup(func() { pub2.Process.Kill(); <-pub2Done })
	p.keys("5")
	p.waitText("held by intercept", "→ PUBLISH")
	// The screen may have been drawn before the packet came (with "nothing held", which
	// cannot be selected): select the first row.
	p.keys("Home")
	p.keys("e")
	p.waitText("edit held PUBLISH 1", "original")
	p.keys("Tab", "Tab", "Tab", "C-u")
	p.typeText("edited in tmux")
	p.keys("Tab", "Enter")
	p.waitText("held packet 1 edited")
	p.keys("a")
	p.waitText("held packet 1 forwarded")
	if !subOut.WaitFor(20*time.Second, func(s string) bool { return strings.Contains(s, "demo/y edited in tmux") }) {
		t.Fatalf("mosquitto_sub got %q, not the edited message", subOut.String())
	}
	if strings.Contains(subOut.String(), "demo/y original") {
		t.Errorf("mosquitto_sub got the message unedited too: %q", subOut.String())
	}
	select {
	case <-pub2Done:
		if pub2Err != nil {
			t.Errorf("mosquitto_pub of demo/y: %v %s", pub2Err, pub2Out.String())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("mosquitto_pub of demo/y got no PUBACK")
	}
}
