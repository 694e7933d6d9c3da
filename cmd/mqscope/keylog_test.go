package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// tlsTap records what one side writes as one direction of a TCP conversation.
type tlsTap struct {
	net.Conn
	mu  *sync.Mutex
	s   *pcapng.TCPStream
	dir stream.Dir
}

func (c tlsTap) Write(p []byte) (int, error) {
	c.mu.Lock()
	err := c.s.Write(c.dir, time.Now(), p)
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// brokerCert returns a throwaway self-signed certificate for "broker.test".
func brokerCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "broker.test"},
		DNSNames: []string{"broker.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsMQTTCapture writes a capture of one MQTT 5 connection over TLS (crypto/tls on both
// sides, recorded as a connection to port 8883) and its key log; the client publishes to
// topic.
func tlsMQTTCapture(t *testing.T, version uint16, topic string) (file, keylog string) {
	t.Helper()
	cert := brokerCert(t)
	dir := t.TempDir()
	file, keylog = filepath.Join(dir, "tls.pcapng"), filepath.Join(dir, "keys.log")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sw, err := pcapng.NewStreamWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	client, server := netip.MustParseAddrPort("10.0.0.2:40001"), netip.MustParseAddrPort("10.0.0.1:8883")
	s, err := sw.Open(client, server, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	var kl bytes.Buffer
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		sc := tls.Server(tlsTap{c, &mu, s, stream.S2C}, &tls.Config{MinVersion: version, MaxVersion: version,
			Certificates: []tls.Certificate{cert}, NextProtos: []string{"mqtt"}})
		defer sc.Close()
		buf := make([]byte, 1024)
		if _, err := sc.Read(buf); err != nil { // the CONNECT
			done <- err
			return
		}
		connack, _ := decode.Encode(nil, &decode.Connack{Base: decode.Base{Version: decode.V5}})
		if _, err := sc.Write(connack); err != nil {
			done <- err
			return
		}
		_, err = io.Copy(io.Discard, sc) // the PUBLISH and DISCONNECT
		done <- err
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc := tls.Client(tlsTap{c, &mu, s, stream.C2S}, &tls.Config{ServerName: "broker.test", InsecureSkipVerify: true,
		NextProtos: []string{"mqtt"}, KeyLogWriter: &kl, MinVersion: version, MaxVersion: version})
	v5 := decode.Base{Version: decode.V5}
	connect, _ := decode.Encode(nil, &decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: "tls-dev",
		HasUsername: true, Username: "dev", HasPassword: true, Password: []byte("hunter2")})
	if _, err := cc.Write(connect); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	pub, _ := decode.Encode(nil, &decode.Publish{Base: v5, Topic: topic, Payload: []byte("21.5")})
	disc, _ := decode.Encode(nil, &decode.Disconnect{Base: v5})
	if _, err := cc.Write(append(pub, disc...)); err != nil {
		t.Fatal(err)
	}
	cc.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if err := s.Close(stream.C2S, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := sw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keylog, kl.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, keylog
}

// TestReadKeylog: read --keylog decrypts a TLS capture: its MQTT packets are listed with the
// connection's TLS, the password still redacted; SSLKEYLOGFILE does the same and says so; a
// key log without the connection's secrets says which client random is missing.
func TestReadKeylog(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		file, keylog := tlsMQTTCapture(t, v, "sensors/tls")
		t.Setenv(keylogEnv, "")
		code, out, errOut := runCmd(t, "", "read", "--format", "jsonl", "--keylog", keylog, file)
		recs := jsonLines(t, out)
		if code != 0 || count(recs, "kind", "packet") != 4 || !strings.Contains(errOut, "TLS connections decrypted: 1; not decrypted: 0") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		var pub map[string]any
		for _, r := range recs {
			tl, ok := r["tls"].(map[string]any)
			if !ok || tl["decrypted"] != true || tl["sni"] != "broker.test" || tl["alpn"] != "mqtt" ||
				!strings.HasPrefix(tl["version"].(string), "TLS 1.") || tl["cipher"] == "" {
				t.Errorf("%s record: tls %v", r["kind"], r["tls"])
			}
			if r["type"] == "PUBLISH" {
				pub = r
			}
		}
		if pub == nil || pub["topic"] != "sensors/tls" {
			t.Errorf("no PUBLISH to sensors/tls: %v", pub)
		}
		if strings.Contains(out, "hunter2") {
			t.Errorf("the password is shown")
		}

		t.Setenv(keylogEnv, keylog)
		code, again, errOut := runCmd(t, "", "read", "--format", "jsonl", file)
		if code != 0 || again != out || !strings.Contains(errOut, "key log "+keylog+" named by SSLKEYLOGFILE") {
			t.Errorf("with SSLKEYLOGFILE: exit %d\n%s\n%s", code, again, errOut)
		}
		t.Setenv(keylogEnv, "")

		// The same key log embedded by editcap in a Decryption Secrets Block.
		embedded := filepath.Join(t.TempDir(), "embedded.pcapng")
		if b, err := exec.Command(peer.Require(t, "editcap"), "--inject-secrets", "tls,"+keylog, file, embedded).CombinedOutput(); err != nil {
			t.Fatalf("editcap: %v\n%s", err, b)
		}
		code, again, errOut = runCmd(t, "", "read", "--format", "jsonl", embedded)
		if code != 0 || again != out || !strings.Contains(errOut, "TLS secrets read from the capture's decryption secrets blocks: ") {
			t.Errorf("with the secrets embedded: exit %d\n%s\n%s", code, again, errOut)
		}

		// --write embeds the secrets of the connections written: the new file reads the same
		// without --keylog, in mqscope and in tshark.
		written := filepath.Join(t.TempDir(), "written.pcapng")
		code, _, errOut = runCmd(t, "", "read", "--format", "jsonl", "--keylog", keylog, "--write", written, file)
		if code != 0 || !strings.Contains(errOut, "warning: "+written+" holds the TLS secrets of the 1 connection written") {
			t.Errorf("--write: exit %d\n%s", code, errOut)
		}
		if fi, err := os.Stat(written); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("--write: %v, mode %v", err, fi.Mode())
		}
		code, again, errOut = runCmd(t, "", "read", "--format", "jsonl", written)
		if code != 0 || again != out {
			t.Errorf("the file written, read without --keylog: exit %d\n%s\n%s", code, again, errOut)
		}
		tsh, err := exec.Command(peer.Require(t, "tshark"), "-r", written, "-Y", "mqtt", "-T", "fields", "-e", "mqtt.msgtype").Output()
		if err != nil || strings.Fields(string(tsh)) == nil || strings.Join(strings.Fields(strings.ReplaceAll(string(tsh), ",", " ")), " ") != "1 2 3 14" {
			t.Errorf("tshark on the file written: %v: %q, want CONNECT, CONNACK, PUBLISH, DISCONNECT", err, tsh)
		}

		other := filepath.Join(t.TempDir(), "other.log")
		if err := os.WriteFile(other, []byte("CLIENT_RANDOM "+strings.Repeat("00", 32)+" "+strings.Repeat("11", 48)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut = runCmd(t, "", "read", "--keylog", other, file)
		if code != 0 || !strings.Contains(out, ", not decrypted: no key for client random ") || !strings.Contains(errOut, "not decrypted: 1 (each says why)") {
			t.Errorf("other keys: exit %d\n%s\n%s", code, out, errOut)
		}
		code, out, _ = runCmd(t, "", "read", "--summary", "--keylog", keylog, file)
		if code != 0 || !strings.Contains(out, ", decrypted with the key log (server name: broker.test, ALPN: mqtt)") {
			t.Errorf("summary: exit %d\n%s", code, out)
		}
	}
}

// TestReadKeylogErrors: a key log that cannot be read or parsed stops read with its name and
// line.
func TestReadKeylogErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.log")
	if err := os.WriteFile(bad, []byte("# comment\nCLIENT_RANDOM abcd 1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ keylog, want string }{
		{bad, bad + ": line 2: CLIENT_RANDOM: the client random is not 32 bytes of hex"},
		{filepath.Join(t.TempDir(), "missing.log"), "no such file"},
	} {
		code, _, errOut := runCmd(t, "", "read", "--keylog", tc.keylog, "../../testdata/captures/mqtt-tls.pcapng")
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("--keylog %s: exit %d, %q", tc.keylog, code, errOut)
		}
	}
}

// TestCaptureLiveTLS: capture --keylog decrypts a TLS connection on loopback whose client
// appends its secrets to the key log as it connects (the file is read again when a
// connection has none yet), and --write embeds them in the recording, which then reads
// decrypted without --keylog, in mqscope and tshark.
func TestCaptureLiveTLS(t *testing.T) {
	cert := brokerCert(t)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 64)
		c.Read(b)
		c.Write([]byte{0x20, 0x02, 0x00, 0x00})
		io.Copy(io.Discard, c)
	}()
	port := l.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	keylog := filepath.Join(dir, "keys.log")
	if err := os.WriteFile(keylog, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb peer.Buffer
	o := &captureOptions{io: &streams{Out: &out, Err: &errb}, iface: "lo",
		out: outputOptions{format: "jsonl", payload: "preview", write: filepath.Join(dir, "live.pcapng"),
			keylogs: []string{keylog}, tlsPorts: portsFlag{uint16(port)}}}
	cancel, done := startCapture(t, o)
	defer cancel()
	kl, err := os.OpenFile(keylog, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer kl.Close()
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{ServerName: "broker.test", InsecureSkipVerify: true, KeyLogWriter: kl})
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 'x'})
	c.Read(make([]byte, 4))
	c.Write([]byte{0xe0, 0x00})
	c.Close()
	mine := fmt.Sprintf(`"server":"127.0.0.1:%d"`, port)
	if !out.WaitFor(10*time.Second, func(w string) bool {
		return strings.Contains(w, mine) && strings.Contains(w, `"kind":"close"`)
	}) {
		t.Fatalf("no close record while capturing; output so far:\n%s\n%s", out.String(), errb.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	for _, r := range jsonLines(t, out.String()) {
		if r["server"] == fmt.Sprintf("127.0.0.1:%d", port) {
			recs = append(recs, r)
		}
	}
	if count(recs, "type", "CONNECT") != 1 || count(recs, "type", "DISCONNECT") != 1 {
		t.Fatalf("capture output:\n%s\n%s", out.String(), errb.String())
	}
	if tl, _ := recs[0]["tls"].(map[string]any); tl["decrypted"] != true {
		t.Errorf("not decrypted: %v", recs[0])
	}
	if !strings.Contains(errb.String(), "holds the TLS secrets of the 1 connection written") {
		t.Errorf("no warning about the secrets written: %s", errb.String())
	}
	code, again, errOut := runCmd(t, "", "read", "--format", "jsonl", "--tls-port", fmt.Sprint(port), o.out.write)
	var back []map[string]any
	for _, r := range jsonLines(t, again) {
		if r["server"] == fmt.Sprintf("127.0.0.1:%d", port) {
			back = append(back, r)
		}
	}
	if code != 0 || count(back, "type", "CONNECT") != 1 || count(back, "type", "DISCONNECT") != 1 {
		t.Errorf("the recording, read without --keylog: exit %d\n%s\n%s", code, again, errOut)
	}
	wantMode(t, o.out.write, 0o600)
	tsh, err := exec.Command(peer.Require(t, "tshark"), "-r", o.out.write, "-d", fmt.Sprintf("tls.port==%d,mqtt", port),
		"-Y", fmt.Sprintf("mqtt && tcp.port==%d", port), "-T", "fields", "-e", "mqtt.msgtype").Output()
	if got := strings.Join(strings.Fields(strings.ReplaceAll(string(tsh), ",", " ")), " "); err != nil || got != "1 2 14" {
		t.Errorf("tshark on the recording: %v: %q, want CONNECT, CONNACK, DISCONNECT", err, got)
	}
}
