package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/proxy"
)

func TestProxyFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no upstream", []string{"proxy"}, "--upstream is required"},
		{"bad format", []string{"proxy", "--upstream", "embedded", "--format", "xml"}, "--format"},
		{"bad scheme", []string{"proxy", "--upstream", "http://x:1"}, "unknown scheme"},
		{"cert without key", []string{"proxy", "--upstream", "embedded", "--listen", "tls://127.0.0.1:0", "--cert", "c.pem"}, "--cert and --key"},
		{"insecure on tcp", []string{"proxy", "--upstream", "127.0.0.1:1", "--insecure"}, "need a tls://"},
		{"bad filter", []string{"proxy", "--upstream", "embedded", "--listen", "127.0.0.1:0", "--filter", "type =="}, "--filter"},
		{"unknown flag", []string{"proxy", "--nope"}, "unknown flag"},
		{"bad fault", []string{"proxy", "--upstream", "embedded", "--fault", "drop dir=up"}, `--fault: fault rule "drop dir=up": column 6: dir: "up" is not c2s, s2c or both`},
		{"negative max-conns", []string{"proxy", "--upstream", "embedded", "--max-conns", "-1"}, "cannot be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, strings.NewReader(""), &out, &errb)
			if code != exitUsage || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, errb.String(), exitUsage, tc.want)
			}
		})
	}
}

// startProxyCmd runs runProxy with o until the test ends; it returns the proxy's address.
func startProxyCmd(t *testing.T, o *proxyOptions) (addr string, stop func() error) {
	t.Helper()
	ready := make(chan string, 1)
	o.started = func(srv *proxy.Server, _ net.Addr) { ready <- srv.Addr().String() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runProxy(ctx, o) }()
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("runProxy: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("proxy did not start")
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

// session connects as an MQTT 5 client, publishes one message and disconnects.
func session(t *testing.T, addr, clientID, topic, payload string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v5 := decode.Base{Version: decode.V5}
	var b []byte
	b, _ = decode.Encode(b, &decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: clientID})
	c.Write(b)
	ack := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(ack); err != nil || n < 4 || ack[0] != 0x20 {
		t.Fatalf("CONNACK: % x %v", ack[:n], err)
	}
	b, _ = decode.Encode(nil, &decode.Publish{Base: v5, Topic: topic, Payload: []byte(payload)})
	d, _ := decode.Encode(nil, &decode.Disconnect{Base: v5})
	c.Write(append(b, d...))
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
}

func TestRunProxyText(t *testing.T) {
	var out, errb peer.Buffer
	o := &proxyOptions{io: &streams{In: strings.NewReader(""), Out: &out, Err: &errb}, listen: "127.0.0.1:0", upstream: "embedded",
		format: "text", payload: "preview", maxFrame: 1 << 20, bufferSize: 4096, shutdownTimeout: 5 * time.Second}
	addr, stop := startProxyCmd(t, o)
	session(t, addr, "textdev", "sensors/1", "21.5")
	// Stop once the close is printed: stopping before would end the connection itself.
	waitOut(t, &out, "closed by ")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CONNECT", "CONNACK", `"sensors/1"`, "21.5", "DISCONNECT", "closed by "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errb.String(), "proxying 127.0.0.1:") {
		t.Errorf("stderr: %s", errb.String())
	}
}

func TestRunProxyJSONFilter(t *testing.T) {
	var out, errb peer.Buffer
	o := &proxyOptions{io: &streams{In: strings.NewReader(""), Out: &out, Err: &errb}, listen: "127.0.0.1:0", upstream: "embedded",
		format: "jsonl", payload: "preview", maxFrame: 1 << 20, bufferSize: 4096, shutdownTimeout: 5 * time.Second,
		filter: `type == "PUBLISH" && topic startsWith "keep/"`}
	addr, stop := startProxyCmd(t, o)
	session(t, addr, "a", "keep/this", "1")
	session(t, addr, "b", "drop/this", "2")
	waitOut(t, &out, `"kind":"close"`) // a's; b's is filtered out with its packets
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		kinds[m["kind"].(string)]++
		if m["kind"] == "packet" && m["topic"] != "keep/this" {
			t.Errorf("filtered packet %s", l)
		}
	}
	if kinds["packet"] != 1 || kinds["close"] != 1 {
		t.Errorf("records by kind %v:\n%s", kinds, out.String())
	}
}

func TestRunProxySummary(t *testing.T) {
	var out, errb peer.Buffer
	o := &proxyOptions{io: &streams{In: strings.NewReader(""), Out: &out, Err: &errb}, listen: "127.0.0.1:0", upstream: "embedded",
		format: "text", payload: "preview", maxFrame: 1 << 20, bufferSize: 4096, shutdownTimeout: 5 * time.Second, summary: true, profile: "spec"}
	addr, stop := startProxyCmd(t, o)
	session(t, addr, "sumdev", "s/1", "x")
	// Printed as the connection closes, not kept until exit.
	if !out.WaitFor(10*time.Second, func(s string) bool { return strings.Contains(s, "Findings:") }) {
		t.Fatalf("no summary once the connection closed: %q", out.String())
	}
	if !strings.Contains(out.String(), "sumdev") || !strings.Contains(out.String(), "PUBLISH 1") {
		t.Errorf("summary:\n%s", out.String())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "Connection 1 "); n != 1 {
		t.Errorf("connection 1 summarised %d times:\n%s", n, out.String())
	}
}

func TestCAInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	var out bytes.Buffer
	o := &caInitOptions{io: &streams{Out: &out, Err: io.Discard}, dir: dir}
	if err := runCAInit(o); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "ca-key.pem")
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode().Perm())
	}
	if !strings.Contains(out.String(), key) || !strings.Contains(out.String(), "--cafile") {
		t.Errorf("output:\n%s", out.String())
	}
	err = runCAInit(o)
	var ue usageError
	if !errors.As(err, &ue) {
		t.Errorf("second init: %v, want a usage error", err)
	}
	// The proxy then terminates TLS with a certificate from it.
	var pout, perr peer.Buffer
	po := &proxyOptions{io: &streams{Out: &pout, Err: &perr}, listen: "tls://127.0.0.1:0", upstream: "embedded", caDir: dir,
		format: "text", payload: "preview", maxFrame: 1 << 20, bufferSize: 4096, shutdownTimeout: 5 * time.Second}
	startProxyCmd(t, po)
}

// mqscopeProcess is the test binary run as mqscope with args (split at spaces), through
// TestProxyHelperProcess: for tests that need a process of its own (signals, pipes).
func mqscopeProcess(args string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestProxyHelperProcess$")
	cmd.Env = append(os.Environ(), "MQSCOPE_PROXY_HELPER=1", "MQSCOPE_PROXY_ARGS="+args)
	return cmd
}

// TestProxyHelperProcess is not a test: mqscopeProcess runs the test binary as mqscope, with
// the arguments in MQSCOPE_PROXY_ARGS.
func TestProxyHelperProcess(t *testing.T) {
	if os.Getenv("MQSCOPE_PROXY_HELPER") != "1" {
		t.Skip("helper process for TestProxySignal")
	}
	args := strings.Split(os.Getenv("MQSCOPE_PROXY_ARGS"), " ")
	os.Exit(run(args, os.Stdin, os.Stdout, os.Stderr))
}

// proxyingRE finds the bound address in the proxy's "proxying A -> B" line.
var proxyingRE = regexp.MustCompile(`proxying (?:tcp://)?(127\.0\.0\.1:[0-9]+) ->`)

// TestProxySignal: on SIGINT and SIGTERM the proxy tells an MQTT 5 device DISCONNECT 0x8B,
// flushes its output and exits 0.
func TestProxySignal(t *testing.T) {
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			// Port 0: the proxy binds a free port and names it on stderr, so no other
			// process can take the port between choosing and binding it.
			cmd := mqscopeProcess("proxy --upstream embedded --listen 127.0.0.1:0 --summary")
			var out, errb peer.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			if !errb.WaitFor(60*time.Second, proxyingRE.MatchString) {
				t.Fatalf("proxy did not say where it listens:\n%s", errb.String())
			}
			addr := proxyingRE.FindStringSubmatch(errb.String())[1]
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("proxy not listening: %v\n%s", err, errb.String())
			}
			defer c.Close()
			connect, _ := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: "sigdev"})
			c.Write(connect)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 256)
			n, err := c.Read(buf)
			if err != nil || n < 4 || buf[0] != 0x20 {
				t.Fatalf("CONNACK: % x %v", buf[:n], err)
			}
			cmd.Process.Signal(sig)
			rest, _ := io.ReadAll(c)
			if len(rest) < 3 || rest[0] != 0xE0 || rest[2] != 0x8B {
				t.Errorf("device got % x, want DISCONNECT 0x8B\n%s", rest, errb.String())
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("exit: %v\n%s", err, errb.String())
			}
			if !strings.Contains(out.String(), "sigdev") {
				t.Errorf("summary not flushed:\n%s", out.String())
			}
		})
	}
}

// TestRunProxySessionTakeover: a second connection with the same Client Identifier takes the
// session over; the broker's DISCONNECT 0x8E on the first is linked to the second's CONNECT.
func TestRunProxySessionTakeover(t *testing.T) {
	var out, errb peer.Buffer
	o := &proxyOptions{io: &streams{In: strings.NewReader(""), Out: &out, Err: &errb}, listen: "127.0.0.1:0", upstream: "embedded",
		format: "text", payload: "preview", maxFrame: 1 << 20, bufferSize: 4096, shutdownTimeout: 5 * time.Second}
	addr, stop := startProxyCmd(t, o)
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	b, _ := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, CleanStart: true, KeepAlive: 30, ClientID: "twin"})
	first.Write(b)
	first.SetReadDeadline(time.Now().Add(5 * time.Second))
	ack := make([]byte, 64)
	if n, err := first.Read(ack); err != nil || n < 4 || ack[0] != 0x20 {
		t.Fatalf("CONNACK: % x %v", ack[:n], err)
	}
	session(t, addr, "twin", "t/x", "second") // takes the session over
	first.Read(ack)                           // the broker's DISCONNECT 0x8E
	waitOut(t, &out, "caused by CONNECT #1 of connection 2")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MQSCOPE-SESSION-TAKEOVER", "0x8E Session taken over", "connection 2 connected with Client Identifier \"twin\" and took over this session", "caused by CONNECT #1 of connection 2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// waitOut waits until out has want.
func waitOut(t *testing.T, out *peer.Buffer, want string) {
	t.Helper()
	if !out.WaitFor(10*time.Second, func(s string) bool { return strings.Contains(s, want) }) {
		t.Fatalf("output lacks %q:\n%s", want, out.String())
	}
}

// TestProxyAPIToken: the control API wants the token mqscope printed, or the one given by
// --api-token or $MQSCOPE_API_TOKEN (never printed); listening beyond loopback draws a warning.
func TestProxyAPIToken(t *testing.T) {
	for _, tc := range []struct {
		name, api, flag, env string
		warn                 bool
	}{
		{"generated", "127.0.0.1:0", "", "", false},
		{"flag", "127.0.0.1:0", "flag-token", "env-token", false},
		{"env", "127.0.0.1:0", "", "env-token", false},
		{"wildcard", "0.0.0.0:0", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MQSCOPE_API_TOKEN", tc.env)
			var out, errb peer.Buffer
			o := &proxyOptions{io: &streams{In: strings.NewReader(""), Out: &out, Err: &errb}, listen: "127.0.0.1:0", upstream: "embedded",
				api: tc.api, apiToken: tc.flag, quiet: true, format: "text", payload: "preview", maxFrame: 1 << 20, bufferSize: 4096, shutdownTimeout: 5 * time.Second}
			apiAddr := make(chan net.Addr, 1)
			o.started = func(_ *proxy.Server, a net.Addr) { apiAddr <- a }
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- runProxy(ctx, o) }()
			defer func() { cancel(); <-done }()
			var addr net.Addr
			select {
			case addr = <-apiAddr:
			case err := <-done:
				t.Fatalf("runProxy: %v", err)
			}
			base := "http://127.0.0.1:" + strings.TrimPrefix(addr.String()[strings.LastIndex(addr.String(), ":"):], ":")
			stderr := errb.String()
			token := tc.flag
			if token == "" {
				token = tc.env
			}
			if token == "" {
				m := regexp.MustCompile(`Authorization: Bearer (\S+)"`).FindStringSubmatch(stderr)
				if m == nil {
					t.Fatalf("no token printed: %s", stderr)
				}
				token = m[1]
			} else if strings.Contains(stderr, token) {
				t.Errorf("a given token was printed: %s", stderr)
			}
			if got := strings.Contains(stderr, "WARNING: the control API listens on"); got != tc.warn {
				t.Errorf("warning %v, want %v: %s", got, tc.warn, stderr)
			}
			for _, try := range []struct {
				token, path string
				want        int
			}{{"", "/connections", 401}, {token + "x", "/connections", 401}, {token, "/connections", 200},
				{"", "/faults", 401}, {token, "/faults", 200}, // the fault rules' routes are there too
				{"", "/intercept/held", 401}, {token, "/intercept/held", 200}} { // and the intercept's
				req, _ := http.NewRequest("GET", base+try.path, nil)
				if try.token != "" {
					req.Header.Set("Authorization", "Bearer "+try.token)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != try.want {
					t.Errorf("token %q %s: %s, want %d", try.token, try.path, res.Status, try.want)
				}
			}
		})
	}
}

// TestProxyRecordTLS: --record-tls writes the device's TLS connection as it was on the wire,
// with its secrets embedded, so that mqscope read decrypts it without a key log and finds the
// packets the device sent through the proxy; the file is 0600.
func TestProxyRecordTLS(t *testing.T) {
	dir := t.TempDir()
	if err := runCAInit(&caInitOptions{io: &streams{Out: io.Discard, Err: io.Discard}, dir: filepath.Join(dir, "ca")}); err != nil {
		t.Fatal(err)
	}
	rec := filepath.Join(dir, "wire.pcapng")
	var pout, perr peer.Buffer
	po := &proxyOptions{io: &streams{Out: &pout, Err: &perr}, listen: "tls://127.0.0.1:0", upstream: "embedded",
		caDir: filepath.Join(dir, "ca"), recordTLS: rec, format: "text", payload: "preview", maxFrame: 1 << 20,
		bufferSize: 4096, shutdownTimeout: 5 * time.Second}
	addr, stop := startProxyCmd(t, po)
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "broker.test"})
	if err != nil {
		t.Fatal(err)
	}
	v5 := decode.Base{Version: decode.V5}
	b, _ := decode.Encode(nil, &decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: "wire"})
	c.Write(b)
	ack := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(ack); err != nil || n < 4 || ack[0] != 0x20 {
		t.Fatalf("CONNACK: % x %v", ack[:n], err)
	}
	b, _ = decode.Encode(nil, &decode.Publish{Base: v5, Topic: "wire/secret", Payload: []byte("over tls")})
	d, _ := decode.Encode(nil, &decode.Disconnect{Base: v5})
	c.Write(append(b, d...))
	io.Copy(io.Discard, c)
	c.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(rec); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("recording: %v %v", fi, err)
	}
	if !strings.Contains(perr.String(), "--record-tls") {
		t.Errorf("no warning that the file holds secrets:\n%s", perr.String())
	}
	var out, errb bytes.Buffer
	if code := run([]string{"read", "--format", "jsonl", "--tls-port", strings.Split(addr, ":")[1], rec}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("read: exit %d: %s", code, errb.String())
	}
	var types []string
	found := false
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if r["kind"] == "packet" {
			types = append(types, r["type"].(string))
			if r["topic"] == "wire/secret" && r["payload"] == "over tls" {
				found = true
			}
		}
	}
	if !found || strings.Join(types, " ") != "CONNECT CONNACK PUBLISH DISCONNECT" {
		t.Errorf("read of the recording: packets %v, the PUBLISH found %v\n%s%s", types, found, out.String(), errb.String())
	}
}
