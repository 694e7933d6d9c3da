package capture

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mqscope/mqscope/capture/tlsdecrypt"
	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// tlsFiles writes a throwaway RSA certificate for "broker.test" and its key (mode 0600) for
// mosquitto, and returns the configuration lines of a TLS listener.
func tlsFiles(t *testing.T) []string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "broker.test"},
		DNSNames:     []string{"broker.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // mosquitto may run as its own user
	crt, kf := filepath.Join(dir, "broker.crt"), filepath.Join(dir, "broker.key")
	must(t, os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	must(t, os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600))
	return []string{"certfile " + crt, "keyfile " + kf}
}

// tapRelay forwards loopback connections to a broker and records what passes, each way, as
// a TCP conversation with port 8883 in a pcapng file (StreamWriter): the bytes a capture on
// the wire would hold.
type tapRelay struct {
	l      net.Listener
	mu     sync.Mutex
	broker string // where connections go now
	sw     *pcapng.StreamWriter
	wg     sync.WaitGroup
}

func newTapRelay(t *testing.T, out io.Writer) *tapRelay {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	sw, err := pcapng.NewStreamWriter(out)
	must(t, err)
	r := &tapRelay{l: l, sw: sw}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.serve(t, c)
			}()
		}
	}()
	return r
}

// to sends the next connections to the broker at addr.
func (r *tapRelay) to(addr string) {
	r.mu.Lock()
	r.broker = addr
	r.mu.Unlock()
}

// close stops the relay once its connections have ended, and flushes the capture.
func (r *tapRelay) close(t *testing.T) {
	r.l.Close()
	r.wg.Wait()
	must(t, r.sw.Flush())
}

func (r *tapRelay) serve(t *testing.T, c net.Conn) {
	defer c.Close()
	r.mu.Lock()
	broker := r.broker
	r.mu.Unlock()
	b, err := net.Dial("tcp", broker)
	if err != nil {
		t.Errorf("relay: %v", err)
		return
	}
	defer b.Close()
	client := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	r.mu.Lock()
	s, err := r.sw.Open(client, netip.AddrPortFrom(client.Addr(), DefaultTLSPort), time.Now())
	r.mu.Unlock()
	if err != nil {
		t.Errorf("relay: %v", err)
		return
	}
	var wg sync.WaitGroup
	pump := func(dir stream.Dir, from, to net.Conn) {
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := from.Read(buf)
			if n > 0 {
				r.mu.Lock()
				werr := s.Write(dir, time.Now(), buf[:n])
				r.mu.Unlock()
				if werr != nil {
					t.Errorf("relay: %v", werr)
				}
				to.Write(buf[:n])
			}
			if err != nil {
				to.(*net.TCPConn).CloseWrite()
				return
			}
		}
	}
	wg.Add(2)
	go pump(stream.C2S, c, b)
	go pump(stream.S2C, b, c)
	wg.Wait()
	r.mu.Lock()
	must(t, s.Close(stream.C2S, time.Now()))
	r.mu.Unlock()
}

// tlsSession is what an MQTT client sent and received over TLS, in plaintext.
type tlsSession struct {
	sent, got []byte
	state     tls.ConnectionState
	port      uint16 // the client's
}

// mqttOverTLS connects to addr with TLS, subscribes, publishes the payloads at QoS 1 (each
// comes back through the subscription) and disconnects, writing its secrets to keylog.
func mqttOverTLS(t *testing.T, addr string, cfg *tls.Config, keylog io.Writer, clientID string, payloads ...[]byte) *tlsSession {
	t.Helper()
	cfg = cfg.Clone()
	cfg.ServerName, cfg.InsecureSkipVerify, cfg.NextProtos, cfg.KeyLogWriter = "broker.test", true, []string{"mqtt"}, keylog
	conn, err := tls.Dial("tcp", addr, cfg)
	must(t, err)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	s := &tlsSession{port: conn.LocalAddr().(*net.TCPAddr).AddrPort().Port()}
	v5 := decode.Base{Version: decode.V5}
	send := func(p decode.Packet) {
		b, err := decode.Encode(nil, p)
		must(t, err)
		s.sent = append(s.sent, b...)
		_, err = conn.Write(b)
		must(t, err)
	}
	var in []byte
	next := func() decode.Packet {
		for {
			if n, err := decode.SplitFrame(in, 0); err == nil && n > 0 {
				p := decode.Decode(in[:n], decode.V5)
				in = in[n:]
				return p
			}
			buf := make([]byte, 64<<10)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("reading from the broker: %v", err)
			}
			in = append(in, buf[:n]...)
			s.got = append(s.got, buf[:n]...)
		}
	}
	send(&decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: clientID})
	if p := next(); p.Type() != decode.CONNACK {
		t.Fatalf("want CONNACK, got %v", p.Type())
	}
	topic := "mqscope/tls/" + clientID
	send(&decode.Subscribe{Base: v5, PacketID: 1, Subscriptions: []decode.Subscription{{Filter: topic, QoS: 1, Options: 1}}})
	if p := next(); p.Type() != decode.SUBACK {
		t.Fatalf("want SUBACK, got %v", p.Type())
	}
	for i, pl := range payloads {
		send(&decode.Publish{Base: v5, QoS: 1, Topic: topic, PacketID: uint16(10 + i), Payload: pl})
	}
	for acks, echoes := 0, 0; acks < len(payloads) || echoes < len(payloads); {
		switch p := next().(type) {
		case *decode.Ack:
			acks++
		case *decode.Publish:
			echoes++
			send(&decode.Ack{Base: v5, PacketType: decode.PUBACK, PacketID: p.PacketID})
		default:
			t.Fatalf("unexpected %v", p.Type())
		}
	}
	send(&decode.Disconnect{Base: v5})
	s.state = conn.ConnectionState()
	// Read to the end: the broker closes after the DISCONNECT.
	for {
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		s.got = append(s.got, buf[:n]...)
		if err != nil {
			break
		}
	}
	return s
}

// tlsCase is one kind of TLS connection of the tests.
type tlsCase struct {
	suite  uint16 // what must be negotiated
	client *tls.Config
	broker []string // mosquitto listener options
}

var tlsCases = []tlsCase{
	{tls.TLS_AES_128_GCM_SHA256, &tls.Config{MinVersion: tls.VersionTLS13}, []string{"ciphers_tls1.3 TLS_AES_128_GCM_SHA256"}},
	{tls.TLS_AES_256_GCM_SHA384, &tls.Config{MinVersion: tls.VersionTLS13}, []string{"ciphers_tls1.3 TLS_AES_256_GCM_SHA384"}},
	{tls.TLS_CHACHA20_POLY1305_SHA256, &tls.Config{MinVersion: tls.VersionTLS13}, []string{"ciphers_tls1.3 TLS_CHACHA20_POLY1305_SHA256"}},
	{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls12(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256), nil},
	{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls12(tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384), nil},
	{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, tls12(tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256), nil},
	{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls12(tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA), nil},
	{tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls12(tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA), nil},
	{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, tls12(tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256), []string{"ciphers ECDHE-RSA-AES128-SHA256"}},
}

func tls12(suite uint16) *tls.Config {
	return &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}}
}

// relayToMosquittoTLS starts mosquitto with TLS and a relay to it that records what passes to
// a capture in a directory of the test's; it returns the capture's path, a key log path beside
// it for the client to write, and the relay.
func relayToMosquittoTLS(t *testing.T, name string) (file, keylog string, r *tapRelay) {
	t.Helper()
	peer.Require(t, "mosquitto")
	dir := t.TempDir()
	file, keylog = filepath.Join(dir, name+".pcapng"), filepath.Join(dir, "keys.log")
	f, err := os.Create(file)
	must(t, err)
	t.Cleanup(func() { f.Close() })
	m := peer.StartMosquitto(t, tlsFiles(t)...)
	r = newTapRelay(t, f)
	r.to(m.Addr)
	return file, keylog, r
}

// tlsCapture runs one MQTT connection of each case through mosquitto and the relay, and
// returns the capture, the key log and what each client sent and received, by client port.
func tlsCapture(t *testing.T, cases []tlsCase) (file, keylog string, sessions map[uint16]*tlsSession) {
	t.Helper()
	peer.Require(t, "mosquitto")
	dir := t.TempDir()
	file, keylog = filepath.Join(dir, "tls.pcapng"), filepath.Join(dir, "keys.log")
	f, err := os.Create(file)
	must(t, err)
	defer f.Close()
	kl, err := os.OpenFile(keylog, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	must(t, err)
	defer kl.Close()
	certs := tlsFiles(t)
	sessions = map[uint16]*tlsSession{}
	payloads := [][]byte{[]byte("hello over TLS"), bytes.Repeat([]byte("a large payload spanning records. "), 1500), []byte("bye")}
	r := newTapRelay(t, f)
	brokers := map[string]*peer.Mosquitto{} // by their options: a session resumes with the same broker
	for i, tc := range cases {
		conf := strings.Join(tc.broker, "\n")
		if tc.client.ClientSessionCache == nil {
			conf += fmt.Sprint(i) // a broker of its own
		}
		m := brokers[conf]
		if m == nil {
			m = peer.StartMosquitto(t, append(append([]string{}, certs...), tc.broker...)...)
			brokers[conf] = m
		}
		r.to(m.Addr)
		s := mqttOverTLS(t, r.l.Addr().String(), tc.client, kl, fmt.Sprintf("tls-%d", i), payloads...)
		if s.state.CipherSuite != tc.suite {
			t.Fatalf("negotiated %s, want %s", tlsdecrypt.SuiteName(s.state.CipherSuite), tlsdecrypt.SuiteName(tc.suite))
		}
		sessions[s.port] = s
	}
	r.close(t)
	return file, keylog, sessions
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	must(t, err)
	return string(b)
}

func readKeys(t *testing.T, name string) *tlsdecrypt.Keys {
	t.Helper()
	f, err := os.Open(name)
	must(t, err)
	defer f.Close()
	k := tlsdecrypt.NewKeys()
	_, err = k.Read(f, name)
	must(t, err)
	return k
}

// TestDecryptMosquittoTLS decrypts MQTT connections to mosquitto (OpenSSL) from crypto/tls
// clients, TLS 1.3 and 1.2 with each cipher family, and checks the application data against
// what each client sent and received, and the MQTT messages against tshark's decryption
// with the same key log.
func TestDecryptMosquittoTLS(t *testing.T) {
	file, keylog, sessions := tlsCapture(t, tlsCases)
	r := &recorder{}
	must(t, ReadFiles(context.Background(), []string{file}, NewAnalyzer(r, Options{TLSKeys: readKeys(t, keylog)}), nil))
	if len(r.conns) != len(tlsCases) {
		t.Fatalf("%d connections, want %d", len(r.conns), len(tlsCases))
	}
	for _, c := range r.conns {
		s := sessions[c.info.Client.Port()]
		if s == nil {
			t.Fatalf("connection from port %d not made by the test", c.info.Client.Port())
		}
		name := tlsdecrypt.SuiteName(s.state.CipherSuite)
		tl := c.info.TLS
		switch {
		case c.info.Transport != stream.TLS || tl == nil:
			t.Errorf("%s: transport %v, TLS %+v: not decrypted", name, c.info.Transport, tl)
			continue
		case !tl.Decrypted || tl.Cipher != name || tl.Version != tlsdecrypt.VersionName(s.state.Version) ||
			tl.ServerName != "broker.test" || tl.ALPN != s.state.NegotiatedProtocol:
			t.Errorf("%s: TLS %+v, want %s, SNI broker.test, ALPN %q", name, tl, tlsdecrypt.VersionName(s.state.Version), s.state.NegotiatedProtocol)
		}
		if !bytes.Equal(c.data[stream.C2S], s.sent) {
			t.Errorf("%s: client to server: decrypted %d bytes, the client sent %d", name, len(c.data[stream.C2S]), len(s.sent))
		}
		if !bytes.Equal(c.data[stream.S2C], s.got) {
			t.Errorf("%s: server to client: decrypted %d bytes, the client received %d", name, len(c.data[stream.S2C]), len(s.got))
		}
	}
	t.Run("tshark", func(t *testing.T) {
		theirs := tsharkMsgs(t, file, "8883", "-o", "tls.keylog_file:"+keylog)
		ours := mqscopeMsgs(t, file, Options{TLSKeys: readKeys(t, keylog)})
		compare(t, ours, theirs)
		t.Logf("%d MQTT packets in %d TLS connections agree with tshark", len(ours), len(tlsCases))
	})
	t.Run("editcap", func(t *testing.T) {
		// The key log embedded in a Decryption Secrets Block by Wireshark's editcap decrypts
		// the same without keys given.
		editcap := peer.Require(t, "editcap")
		embedded := filepath.Join(t.TempDir(), "embedded.pcapng")
		if out, err := exec.Command(editcap, "--inject-secrets", "tls,"+keylog, file, embedded).CombinedOutput(); err != nil {
			t.Fatalf("editcap: %v\n%s", err, out)
		}
		re := &recorder{}
		a := NewAnalyzer(re, Options{})
		must(t, ReadFiles(context.Background(), []string{embedded}, a, nil))
		if st := a.Stats(); st.Secrets != strings.Count(readFile(t, keylog), "\n") || st.Decrypted != len(tlsCases) {
			t.Errorf("secrets %d, decrypted %d", st.Secrets, st.Decrypted)
		}
		if len(re.conns) != len(r.conns) {
			t.Fatalf("%d connections, %d with the key log", len(re.conns), len(r.conns))
		}
		for i, c := range re.conns {
			w := r.conns[i]
			if *c.info.TLS != *w.info.TLS || !bytes.Equal(c.data[0], w.data[0]) || !bytes.Equal(c.data[1], w.data[1]) {
				t.Errorf("connection %d: TLS %+v, %d and %d bytes; with the key log: TLS %+v, %d and %d bytes", i+1,
					c.info.TLS, len(c.data[0]), len(c.data[1]), w.info.TLS, len(w.data[0]), len(w.data[1]))
			}
		}
	})
	t.Run("secrets at the end", func(t *testing.T) {
		// A Decryption Secrets Block after every packet (appended to the file, as a tool that
		// adds the key log at the end of a capture would) decrypts the connections before it.
		data, err := os.ReadFile(file)
		must(t, err)
		kl := []byte(readFile(t, keylog))
		body := append(bytes.Clone(kl), make([]byte, (4-len(kl)%4)%4)...)
		blk := make([]byte, 20+len(body))
		le := binary.LittleEndian
		le.PutUint32(blk, 0x0A)
		le.PutUint32(blk[4:], uint32(len(blk)))
		le.PutUint32(blk[8:], pcapng.SecretsTLS)
		le.PutUint32(blk[12:], uint32(len(kl)))
		copy(blk[16:], body)
		le.PutUint32(blk[len(blk)-4:], uint32(len(blk)))
		at := filepath.Join(t.TempDir(), "secrets-at-end.pcapng")
		must(t, os.WriteFile(at, append(data, blk...), 0o600))
		re := &recorder{}
		a := NewAnalyzer(re, Options{})
		must(t, ReadFiles(context.Background(), []string{at}, a, nil))
		if st := a.Stats(); st.Secrets != strings.Count(string(kl), "\n") || st.Decrypted != len(tlsCases) {
			t.Errorf("secrets %d, decrypted %d of %d", st.Secrets, st.Decrypted, len(tlsCases))
		}
		for i, c := range re.conns {
			if w := r.conns[i]; !bytes.Equal(c.data[0], w.data[0]) || !bytes.Equal(c.data[1], w.data[1]) {
				t.Errorf("connection %d: %d and %d bytes; with the key log %d and %d", i+1, len(c.data[0]), len(c.data[1]), len(w.data[0]), len(w.data[1]))
			}
		}
	})
	t.Run("no keys", func(t *testing.T) {
		r := &recorder{}
		must(t, ReadFiles(context.Background(), []string{file}, NewAnalyzer(r, Options{}), nil))
		for _, c := range r.conns {
			if c.info.Transport != stream.TLS || c.info.TLS != nil {
				t.Errorf("without keys: transport %v, TLS %+v", c.info.Transport, c.info.TLS)
			}
		}
	})
	t.Run("other keys", func(t *testing.T) {
		k := tlsdecrypt.NewKeys()
		_, err := k.Read(strings.NewReader("CLIENT_RANDOM "+strings.Repeat("ab", 32)+" "+strings.Repeat("cd", 48)+"\n"), "other")
		must(t, err)
		r := &recorder{}
		must(t, ReadFiles(context.Background(), []string{file}, NewAnalyzer(r, Options{TLSKeys: k}), nil))
		for _, c := range r.conns {
			tl := c.info.TLS
			if c.info.Transport != stream.TLS || tl == nil || tl.Decrypted || !strings.HasPrefix(tl.Problem, "no key for client random ") {
				t.Errorf("transport %v, TLS %+v: want no key", c.info.Transport, tl)
			}
		}
	})
}

// tcpPackets lists, for each packet of a capture, its TCP source port and payload length.
func tcpPackets(t *testing.T, file string) (ports []uint16, sizes []int) {
	t.Helper()
	f, err := OpenFile(file)
	must(t, err)
	defer f.Close()
	for {
		link, _, data, err := f.Next()
		if err == io.EOF {
			return ports, sizes
		}
		must(t, err)
		ip, _ := ipPacket(link, data)
		_, _, seg, _ := tcpSegment(ip)
		hl := int(seg[12]>>4) * 4
		ports = append(ports, uint16(seg[0])<<8|uint16(seg[1]))
		sizes = append(sizes, len(seg)-hl)
	}
}

// copyCapture copies the packets of a capture for which keep says true to a new file.
func copyCapture(t *testing.T, from, to string, keep func(n int64) bool) {
	t.Helper()
	f, err := os.Create(to)
	must(t, err)
	defer f.Close()
	w, err := pcapng.NewPacketWriter(f)
	must(t, err)
	must(t, CopyPackets([]string{from}, keep, w))
}

// alterCapture copies a capture, changing one byte in the middle of the TCP payload of the
// packets for which alter says true.
func alterCapture(t *testing.T, from, to string, alter func(n int64) bool) {
	t.Helper()
	in, err := OpenFile(from)
	must(t, err)
	defer in.Close()
	f, err := os.Create(to)
	must(t, err)
	defer f.Close()
	w, err := pcapng.NewPacketWriter(f)
	must(t, err)
	for n := int64(1); ; n++ {
		link, ci, data, err := in.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		data = bytes.Clone(data)
		if alter(n) {
			data[len(data)-len(data)/4] ^= 0x55 // inside the payload of a large segment
		}
		must(t, w.WritePacket(link, ci.Timestamp, data, ci.Length))
	}
	must(t, w.Flush())
}

// TestDecryptLostAndLate: a packet lost in the middle of the server's application data
// costs the records it carried, reported as a gap, and decryption goes on after it (the
// record sequence found again); a capture that begins after the handshake says so.
func TestDecryptLostAndLate(t *testing.T) {
	cases := []tlsCase{tlsCases[0], tlsCases[3], tlsCases[5], tlsCases[6]} // 1.3 AES-GCM; 1.2 AES-GCM, ChaCha20, AES-CBC
	file, keylog, sessions := tlsCapture(t, cases)
	keys := readKeys(t, keylog)
	ports, sizes := tcpPackets(t, file)
	// The connections follow one another: a SYN's packet starts each. The 3rd large packet
	// from the server (the echo of the large payload) is lost; the late capture starts at the
	// 2nd large packet from the client (the large publish).
	lost, late := map[int64]bool{}, map[int64]bool{}
	fromServer, fromClient := 0, 0
	for i := range ports {
		n := int64(i + 1)
		switch {
		case sizes[i] < 1000:
		case ports[i] == DefaultTLSPort:
			if fromServer++; fromServer%1000 == 3 {
				lost[n] = true
			}
		default:
			if fromClient++; fromClient%1000 == 2 {
				late[n] = true
			}
		}
		if sizes[i] == 0 && i > 0 && ports[i] != DefaultTLSPort && ports[i] != ports[i-1] {
			fromServer, fromClient = 0, 0 // the next connection's SYN
		}
	}
	if len(lost) != len(cases) || len(late) != len(cases) {
		t.Fatalf("%d packets to lose, %d to start at; want %d of each", len(lost), len(late), len(cases))
	}
	dir := t.TempDir()
	lossy := filepath.Join(dir, "lossy.pcapng")
	copyCapture(t, file, lossy, func(n int64) bool { return !lost[n] })
	r := &recorder{}
	must(t, ReadFiles(context.Background(), []string{lossy}, NewAnalyzer(r, Options{TLSKeys: keys}), nil))
	for _, c := range r.conns {
		s := sessions[c.info.Client.Port()]
		name := tlsdecrypt.SuiteName(s.state.CipherSuite)
		got := c.data[stream.S2C]
		i := bytes.LastIndex(got, []byte("<gap "))
		if c.info.TLS == nil || !c.info.TLS.Decrypted || i < 0 {
			t.Errorf("%s: TLS %+v, no gap: %q", name, c.info.TLS, got)
			continue
		}
		after := got[bytes.IndexByte(got[i:], '>')+i+1:]
		if len(after) < 20 || !bytes.HasSuffix(s.got, after) || !bytes.Contains(after, []byte("bye")) {
			t.Errorf("%s: after the loss, %d bytes decrypted that do not end what the client received: %q", name, len(after), after)
		}
		if !bytes.Equal(c.data[stream.C2S], s.sent) {
			t.Errorf("%s: the client's side, without loss, differs", name)
		}
	}

	// A byte altered in the same packets: the record holding it fails authentication, the
	// next ones decrypt, and the close record says what happened.
	damaged := filepath.Join(dir, "damaged.pcapng")
	alterCapture(t, file, damaged, func(n int64) bool { return lost[n] })
	var buf bytes.Buffer
	w := inspect.NewJSONWriter(&buf, inspect.JSONOptions{})
	in := &Inspector{Emit: w.Write}
	must(t, ReadFiles(context.Background(), []string{damaged}, NewAnalyzer(in, Options{TLSKeys: keys}), nil))
	must(t, in.Close())
	must(t, w.Close())
	closes := 0
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var r struct {
			Kind string
			TLS  struct {
				Decrypted bool
				Problem   string
			}
		}
		must(t, json.Unmarshal(line, &r))
		if r.Kind != "close" {
			continue
		}
		closes++
		if !r.TLS.Decrypted || !strings.Contains(r.TLS.Problem, "from the server failed authentication after") ||
			!strings.Contains(r.TLS.Problem, "altered in the capture") {
			t.Errorf("damaged: close record %s", line)
		}
	}
	if closes != len(cases) {
		t.Errorf("damaged: %d close records, want %d:\n%s", closes, len(cases), buf.Bytes())
	}

	lateFile := filepath.Join(dir, "late.pcapng")
	started := map[uint16]bool{}
	copyCapture(t, file, lateFile, func(n int64) bool {
		p := ports[n-1]
		if p == DefaultTLSPort {
			return true // the connection is not open until its client's first kept packet
		}
		started[p] = started[p] || late[n]
		return started[p]
	})
	r = &recorder{}
	must(t, ReadFiles(context.Background(), []string{lateFile}, NewAnalyzer(r, Options{TLSKeys: keys}), nil))
	for _, c := range r.conns {
		if tl := c.info.TLS; c.info.Transport != stream.TLS || tl == nil || !strings.Contains(tl.Problem, "began after the TLS handshake") {
			t.Errorf("late capture: transport %v, TLS %+v", c.info.Transport, tl)
		} else {
			t.Logf("late capture: %s", tl.Problem)
		}
	}
	if len(r.conns) != len(cases) {
		t.Errorf("late capture: %d connections, want %d", len(r.conns), len(cases))
	}
}

// TestDecryptResumed: sessions resumed from a ticket (TLS 1.3 PSK, TLS 1.2 session ticket)
// decrypt with the secrets logged for their own client randoms, like full handshakes.
func TestDecryptResumed(t *testing.T) {
	var cases []tlsCase
	for _, c := range []*tls.Config{{MinVersion: tls.VersionTLS13}, tls12(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)} {
		c.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		suite := uint16(tls.TLS_AES_128_GCM_SHA256)
		if c.MaxVersion == tls.VersionTLS12 {
			suite = tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
		}
		broker := []string{"ciphers_tls1.3 TLS_AES_128_GCM_SHA256"}
		cases = append(cases, tlsCase{suite, c, broker}, tlsCase{suite, c, broker})
	}
	file, keylog, sessions := tlsCapture(t, cases)
	r := &recorder{}
	must(t, ReadFiles(context.Background(), []string{file}, NewAnalyzer(r, Options{TLSKeys: readKeys(t, keylog)}), nil))
	resumed := 0
	for _, c := range r.conns {
		s := sessions[c.info.Client.Port()]
		if s.state.DidResume {
			resumed++
		}
		if c.info.TLS == nil || !c.info.TLS.Decrypted || !bytes.Equal(c.data[stream.C2S], s.sent) || !bytes.Equal(c.data[stream.S2C], s.got) {
			t.Errorf("%s, resumed %v: TLS %+v, decrypted %d and %d bytes, want %d and %d", tlsdecrypt.VersionName(s.state.Version),
				s.state.DidResume, c.info.TLS, len(c.data[0]), len(c.data[1]), len(s.sent), len(s.got))
		}
	}
	if resumed != 2 || len(r.conns) != 4 {
		t.Errorf("%d connections, %d resumed; want 4 and 2", len(r.conns), resumed)
	}
	theirs := tsharkMsgs(t, file, "8883", "-o", "tls.keylog_file:"+keylog)
	compare(t, mqscopeMsgs(t, file, Options{TLSKeys: readKeys(t, keylog)}), theirs)
}

// TestDecryptKeyUpdate: openssl s_client asks for a TLS 1.3 key update in the middle of an
// MQTT connection to mosquitto (both sides then change keys); what follows decrypts, and the
// MQTT messages agree with tshark's.
func TestDecryptKeyUpdate(t *testing.T) {
	openssl := peer.Require(t, "openssl")
	file, keylog, r := relayToMosquittoTLS(t, "ku")
	cmd := exec.Command(openssl, "s_client", "-connect", r.l.Addr().String(), "-tls1_3", "-servername", "broker.test",
		"-keylogfile", keylog)
	stdin, err := cmd.StdinPipe()
	must(t, err)
	var stdout, stderr peer.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	must(t, cmd.Start())
	defer cmd.Process.Kill()
	v5 := decode.Base{Version: decode.V5}
	enc := func(p decode.Packet) []byte {
		b, err := decode.Encode(nil, p)
		must(t, err)
		return b
	}
	waitFor := func(what string, b *peer.Buffer, want []byte) {
		t.Helper()
		if !b.WaitFor(10*time.Second, func(w string) bool { return strings.Contains(w, string(want)) }) {
			t.Fatalf("s_client: no %s; stdout %q; stderr:\n%s", what, stdout.String(), stderr.String())
		}
	}
	var sent []byte
	send := func(b []byte) {
		sent = append(sent, b...)
		_, err := stdin.Write(b)
		must(t, err)
	}
	send(enc(&decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: "ku"}))
	waitFor("CONNACK", &stdout, []byte("---\n\x20")) // after s_client's account of the session
	send(enc(&decode.Publish{Base: v5, QoS: 1, PacketID: 1, Topic: "before/update", Payload: []byte("old keys")}))
	waitFor("PUBACK 1", &stdout, []byte{0x40, 0x03, 0x00, 0x01})
	_, err = stdin.Write([]byte("K")) // s_client: a key update, the peer asked to update too
	must(t, err)
	waitFor("KEYUPDATE", &stderr, []byte("KEYUPDATE"))
	send(enc(&decode.Publish{Base: v5, QoS: 1, PacketID: 2, Topic: "after/update", Payload: []byte("new keys")}))
	waitFor("PUBACK 2", &stdout, []byte{0x40, 0x03, 0x00, 0x02})
	send(enc(&decode.Disconnect{Base: v5}))
	stdin.Close()
	cmd.Wait()
	r.close(t)

	keys := readKeys(t, keylog)
	rec := &recorder{}
	must(t, ReadFiles(context.Background(), []string{file}, NewAnalyzer(rec, Options{TLSKeys: keys}), nil))
	if len(rec.conns) != 1 {
		t.Fatalf("%d connections", len(rec.conns))
	}
	c := rec.conns[0]
	if c.info.TLS == nil || !c.info.TLS.Decrypted || c.info.TLS.Version != "TLS 1.3" {
		t.Fatalf("TLS %+v", c.info.TLS)
	}
	if !bytes.Equal(c.data[stream.C2S], sent) {
		t.Errorf("decrypted %q, s_client sent %q", c.data[stream.C2S], sent)
	}
	if !bytes.Contains(c.data[stream.S2C], []byte{0x40, 0x03, 0x00, 0x02}) {
		t.Errorf("the PUBACK after the key update was not decrypted: %q", c.data[stream.S2C])
	}
	theirs := tsharkMsgs(t, file, "8883", "-o", "tls.keylog_file:"+keylog)
	ours := mqscopeMsgs(t, file, Options{TLSKeys: keys})
	compare(t, ours, theirs)
	t.Logf("%d MQTT packets agree with tshark across the key update", len(ours))
}

// TestDecryptWebSocket: MQTT over WebSocket over TLS (wss://, a gorilla/websocket client and
// server) decrypts into the WebSocket path: the upgrade is followed and the MQTT packets in
// its binary frames are the ones the client sent.
func TestDecryptWebSocket(t *testing.T) {
	dir := t.TempDir()
	file, keylog := filepath.Join(dir, "wss.pcapng"), filepath.Join(dir, "keys.log")
	f, err := os.Create(file)
	must(t, err)
	defer f.Close()
	kl, err := os.Create(keylog)
	must(t, err)
	defer kl.Close()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "broker.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	must(t, err)
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		if _, _, err := c.ReadMessage(); err != nil { // CONNECT
			return
		}
		c.WriteMessage(websocket.BinaryMessage, []byte{0x20, 0x03, 0x00, 0x00, 0x00})
		c.ReadMessage() // PUBLISH, DISCONNECT, then the close
		c.ReadMessage()
	})}
	go srv.Serve(l)
	defer srv.Close()
	r := newTapRelay(t, f)
	r.to(l.Addr().String())
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, TLSClientConfig: &tls.Config{InsecureSkipVerify: true, KeyLogWriter: kl, ServerName: "broker.test"}}
	c, _, err := d.Dial("wss://"+r.l.Addr().String()+"/mqtt", nil)
	must(t, err)
	v5 := decode.Base{Version: decode.V5}
	var sent [][]byte
	for _, p := range []decode.Packet{
		&decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: "wss"},
		&decode.Publish{Base: v5, Topic: "over/wss", Payload: []byte("hello")},
		&decode.Disconnect{Base: v5},
	} {
		b, err := decode.Encode(nil, p)
		must(t, err)
		sent = append(sent, b)
		must(t, c.WriteMessage(websocket.BinaryMessage, b))
		if len(sent) == 1 {
			_, _, err := c.ReadMessage() // the CONNACK
			must(t, err)
		}
	}
	c.Close()
	r.close(t)

	rec := &recorder{}
	must(t, ReadFiles(context.Background(), []string{file}, NewAnalyzer(rec, Options{TLSKeys: readKeys(t, keylog)}), nil))
	if len(rec.conns) != 1 {
		t.Fatalf("%d connections", len(rec.conns))
	}
	cn := rec.conns[0]
	if cn.info.Transport != stream.WSS || cn.info.Path != "/mqtt" || cn.info.TLS == nil || !cn.info.TLS.Decrypted {
		t.Fatalf("transport %v, path %q, TLS %+v", cn.info.Transport, cn.info.Path, cn.info.TLS)
	}
	if want := bytes.Join(sent, nil); !bytes.Equal(cn.data[stream.C2S], want) {
		t.Errorf("decrypted %q, the client sent %q", cn.data[stream.C2S], want)
	}
	if !bytes.Equal(cn.data[stream.S2C], []byte{0x20, 0x03, 0x00, 0x00, 0x00}) {
		t.Errorf("server to client: %q, want the CONNACK", cn.data[stream.S2C])
	}
}

// pythonClient sends what the script's stdin gives, in hex, one MQTT packet a line, over
// TLS with Python's ssl (OpenSSL) and its keylog_filename; it reads one reply after the
// first packet (the CONNACK) and everything else until the broker closes.
const pythonClient = `
import socket, ssl, sys
host, port, keylog = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
ctx.keylog_filename = keylog
ctx.maximum_version = getattr(ssl.TLSVersion, sys.argv[4])
s = ctx.wrap_socket(socket.create_connection((host, port)), server_hostname="broker.test")
got = b""
for i, line in enumerate(sys.stdin):
    s.sendall(bytes.fromhex(line.strip()))
    if i == 0:
        got += s.recv(65536)
while True:  # the broker closes after the DISCONNECT
    try:
        b = s.recv(65536)
    except (ssl.SSLEOFError, ConnectionResetError):
        break
    if not b:
        break
    got += b
sys.stdout.write(got.hex())
`

// TestDecryptPython: a Python ssl client (OpenSSL, keylog_filename) to mosquitto, TLS 1.3 and
// 1.2: the decrypted bytes are the ones it sent and received, and agree with tshark.
func TestDecryptPython(t *testing.T) {
	python := peer.Require(t, "python3")
	file, keylog, r := relayToMosquittoTLS(t, "py")
	v5 := decode.Base{Version: decode.V5}
	sessions := map[string][2][]byte{}
	for _, v := range []string{"TLSv1_3", "TLSv1_2"} {
		var in strings.Builder
		var sent []byte
		for _, p := range []decode.Packet{
			&decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: "py-" + v},
			&decode.Publish{Base: v5, QoS: 1, PacketID: 7, Topic: "python/" + v, Payload: []byte("from python")},
			&decode.Disconnect{Base: v5},
		} {
			b, err := decode.Encode(nil, p)
			must(t, err)
			sent = append(sent, b...)
			fmt.Fprintf(&in, "%x\n", b)
		}
		host, port, _ := net.SplitHostPort(r.l.Addr().String())
		cmd := exec.Command(python, "-c", pythonClient, host, port, keylog, v)
		cmd.Stdin = strings.NewReader(in.String())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("python %s: %v", v, err)
		}
		got, err := hex.DecodeString(string(out))
		must(t, err)
		sessions[v] = [2][]byte{sent, got}
	}
	r.close(t)
	keys := readKeys(t, keylog)
	rec := &recorder{}
	must(t, ReadFiles(context.Background(), []string{file}, NewAnalyzer(rec, Options{TLSKeys: keys}), nil))
	if len(rec.conns) != 2 {
		t.Fatalf("%d connections", len(rec.conns))
	}
	for i, v := range []string{"TLSv1_3", "TLSv1_2"} {
		c, s := rec.conns[i], sessions[v]
		if c.info.TLS == nil || !c.info.TLS.Decrypted || !bytes.Equal(c.data[stream.C2S], s[0]) || !bytes.Equal(c.data[stream.S2C], s[1]) {
			t.Errorf("%s: TLS %+v; decrypted %x / %x; python sent %x, received %x", v, c.info.TLS, c.data[0], c.data[1], s[0], s[1])
		}
	}
	compare(t, mqscopeMsgs(t, file, Options{TLSKeys: keys}), tsharkMsgs(t, file, "8883", "-o", "tls.keylog_file:"+keylog))
}
