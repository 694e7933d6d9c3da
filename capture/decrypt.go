package capture

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/mqscope/mqscope/capture/tlsdecrypt"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// decrypter is the TLS of a connection being decrypted with Options.TLSKeys: the bytes of
// the wire go to a tlsdecrypt.Conn, and the application data that comes out goes through
// the same classification and framing as the bytes of a plaintext connection (MQTT, or an
// HTTP upgrade to WebSocket).
type decrypter struct {
	s    *tcpConn
	conn *tlsdecrypt.Conn
	t    time.Time // of the bytes being decrypted
}

// Plaintext implements tlsdecrypt.Output.
func (x *decrypter) Plaintext(d tlsdecrypt.Dir, b []byte) {
	if x.s.kind < kindTLSOpen {
		x.s.data(stream.Dir(d), x.t, b)
	}
}

// Lost implements tlsdecrypt.Output.
func (x *decrypter) Lost(d tlsdecrypt.Dir, n int) {
	if x.s.kind < kindTLSOpen {
		x.s.gap(stream.Dir(d), x.t, n)
	}
}

// startDecrypt decrypts the connection from now on: what was held to classify it (the
// ClientHello, and what the server sent) is decrypted first.
func (s *tcpConn) startDecrypt(t time.Time) {
	x := &decrypter{s: s, t: t}
	x.conn = tlsdecrypt.NewConn(s.a.opts.TLSKeys, x)
	s.dec = x
	s.kind = kindUnknown
	if s.a.opts.Record != nil {
		// Recorded whole from its start: its records are reported later, with its first
		// application data, and every one of them is needed to decrypt the next.
		s.startRecording()
	}
	for _, d := range []stream.Dir{stream.C2S, stream.S2C} {
		h := &s.half[s.rd(d)]
		pre, lost := h.pre, h.preGap
		h.pre, h.preGap = nil, 0
		if lost > 0 {
			x.conn.Gap(tlsdecrypt.Dir(d), lost)
		}
		if len(pre) > 0 {
			x.conn.Data(tlsdecrypt.Dir(d), pre)
		}
	}
	s.decrypted(t)
}

// wireData takes bytes of direction d as captured: decrypted first when the connection is.
func (s *tcpConn) wireData(d stream.Dir, t time.Time, b []byte) {
	if x := s.dec; x != nil {
		x.t = t
		x.conn.Data(tlsdecrypt.Dir(d), b)
		s.decrypted(t)
		return
	}
	s.data(d, t, b)
}

// wireGap reports n bytes of direction d lost to the capture.
func (s *tcpConn) wireGap(d stream.Dir, t time.Time, n int) {
	if x := s.dec; x != nil {
		x.t = t
		x.conn.Gap(tlsdecrypt.Dir(d), n)
		s.decrypted(t)
		return
	}
	s.gap(d, t, n)
}

// decrypted reports the connection as encrypted, with the reason, once it is known that
// nothing of it can be decrypted: the client's side is dead before any of it was, so there
// will be no MQTT to show.
func (s *tcpConn) decrypted(t time.Time) {
	x := s.dec
	if x == nil || s.conn != nil || !x.conn.Dead(tlsdecrypt.ClientToServer) {
		return
	}
	s.reportEncrypted()
}

// reportEncrypted lists the connection as TLS that was not decrypted, saying why.
func (s *tcpConn) reportEncrypted() {
	info := s.tlsInfo()
	if st := s.dec.conn.Status(); info.Problem == "" && st.Records > 0 {
		info.Problem = "no application data: the connection ended after its handshake"
	} else if info.Problem == "" {
		info.Problem = "no protected record was captured"
	}
	s.info.ServerName = info.ServerName
	s.info.TLS = info
	s.a.stats.NotDecrypted++
	s.dec = nil
	s.report(stream.TLS)
	s.half[0].pre, s.half[1].pre = nil, nil
	s.kind = kindTLSOpen
}

// closeDecrypt ends the decryption at the end of the connection: losses still held are
// reported, and a connection that showed no application data is listed as TLS.
func (s *tcpConn) closeDecrypt(t time.Time) {
	x := s.dec
	x.t = t
	x.conn.Close()
	if s.conn == nil {
		s.reportEncrypted()
		return
	}
	if err := x.conn.Status().Err; err != nil && s.info.TLS != nil {
		// Found after the connection was opened: its close record says it.
		info := *s.info.TLS
		info.Problem = err.Error()
		s.info.TLS = &info
	}
	s.noteDecrypted()
}

// tlsInfo is what the records of the connection say of its TLS.
func (s *tcpConn) tlsInfo() *stream.TLSInfo {
	st := s.dec.conn.Status()
	info := &stream.TLSInfo{Version: tlsdecrypt.VersionName(st.Version), ServerName: st.ServerName, ALPN: st.Protocol}
	if st.Version != 0 {
		info.Cipher = tlsdecrypt.SuiteName(st.Suite)
	}
	if st.Err != nil {
		info.Problem = st.Err.Error()
	}
	if !st.Hello {
		info.ServerName = s.info.ServerName
	}
	return info
}

// classifyDecrypted decides what decrypted application data carries: an HTTP upgrade to
// WebSocket, or MQTT (TLS was recognised on an MQTT port or by an ALPN naming MQTT).
func (s *tcpConn) classifyDecrypted(t time.Time) {
	cb := s.half[s.rd(stream.C2S)].pre
	switch {
	case len(cb) == 0:
		// The client speaks first, in MQTT and HTTP alike.
	case bytes.HasPrefix(cb, []byte("GET ")) || bytes.HasPrefix([]byte("GET "), cb):
		s.kind = kindHTTP
		s.upgrade(t)
	default:
		s.open(t, stream.TCP)
	}
}

// decryptedOpen completes the description of a connection opened with its decrypted
// application data: its transport is TLS (or WebSocket over TLS), its TLS known.
func (s *tcpConn) decryptedOpen() {
	s.a.stats.Decrypted++
	if s.info.Transport == stream.WebSocket {
		s.info.Transport = stream.WSS
	} else {
		s.info.Transport = stream.TLS
	}
	info := s.tlsInfo()
	info.Problem, info.Decrypted = "", true
	s.info.TLS = info
}

// decrypting says whether the connection is TLS being decrypted (or about to be).
func (s *tcpConn) decrypting() bool {
	return s.a.opts.TLSKeys != nil && (s.kind == kindTLS || s.dec != nil)
}

// maxKeepTLS bounds the packets of a TLS connection held for Options.Keep until one of its
// MQTT packets is wanted.
const maxKeepTLS = 1 << 18

// keepTLS selects packet n, which carries TLS records, for Options.Keep: every record is
// needed to decrypt the ones after it, so a decrypted connection's packets are kept whole
// once one of its MQTT packets is wanted (until then they are held, up to maxKeepTLS).
func (s *tcpConn) keepTLS(n int64) {
	switch {
	case s.kept:
		s.a.opts.Keep(n)
	case len(s.control) < maxKeepTLS:
		s.control = append(s.control, n)
	default:
		s.keepCut = true
	}
}

// noteDecrypted remembers, at the end of a connection that was decrypted, its client random:
// the secrets of those kept (Options.Keep) or recorded (Options.Record) go with them into
// the file written (TLSRandoms).
func (s *tcpConn) noteDecrypted() {
	if s.dec == nil || s.info.TLS == nil || !s.info.TLS.Decrypted || (s.a.opts.Keep != nil && (!s.kept || s.keepCut)) {
		return
	}
	if st := s.dec.conn.Status(); st.Hello {
		s.a.randoms = append(s.a.randoms, st.Random)
	}
}

// TLSRandoms returns the client randoms of the TLS connections decrypted so far (with
// Options.Keep, of those whose packets were kept), in the order they ended: their secrets
// are what a file of their packets needs to open decrypted.
func (a *Analyzer) TLSRandoms() []tlsdecrypt.Random { return a.randoms }

// TLSKeys returns the secrets the Analyzer decrypts with: Options.TLSKeys, and those of the
// Decryption Secrets Blocks read (nil when there are none). The blocks are read only once a
// TLS connection needs them, and only a decrypted connection (TLSRandoms) needs keys from here.
func (a *Analyzer) TLSKeys() *tlsdecrypt.Keys { return a.opts.TLSKeys }

// needSecrets reads the Decryption Secrets Blocks of the files being read, the first time a
// TLS connection (or a secrets block among the packets) needs them: they count wherever they
// are in a file (a key log appended after the handshakes it decrypts), so each file but
// standard input, which cannot be read twice, is skimmed for them whole. A capture without TLS
// is not read twice.
func (a *Analyzer) needSecrets() {
	names := a.secretsFrom
	if names == nil {
		return
	}
	a.secretsFrom = nil
	for _, name := range names {
		if s := scanSecrets(name); len(s) > 0 {
			if a.scanned == nil {
				a.scanned = map[string]bool{}
			}
			a.scanned[name] = true
			if err := a.addSecrets(name, s); err != nil {
				a.secretsErrs = append(a.secretsErrs, err)
			}
		}
	}
}

// addSecrets takes the TLS key logs of a capture file's Decryption Secrets Blocks: TLS
// connections reported after them are decrypted with them (with Options.TLSKeys, or on
// their own).
func (a *Analyzer) addSecrets(file string, secrets []Secrets) error {
	var errs []error
	for _, s := range secrets {
		if s.Type != pcapng.SecretsTLS {
			continue
		}
		if a.opts.TLSKeys == nil {
			a.opts.TLSKeys = tlsdecrypt.NewKeys()
		}
		st, err := a.opts.TLSKeys.Read(bytes.NewReader(s.Data), fmt.Sprintf("%s: the TLS key log of the decryption secrets block at offset %d", file, s.Off))
		a.stats.Secrets += st.Secrets
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
