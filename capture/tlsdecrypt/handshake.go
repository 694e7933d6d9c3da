package tlsdecrypt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
)

// Handshake message types (RFC 8446 section 4, RFC 5246 section 7.4).
const (
	msgClientHello         = 1
	msgServerHello         = 2
	msgNewSessionTicket    = 4
	msgEncryptedExtensions = 8
	msgFinished            = 20
	msgKeyUpdate           = 24
)

// Record content types.
const (
	typeChangeCipherSpec = 20
	typeAlert            = 21
	typeHandshake        = 22
	typeApplicationData  = 23
)

// Extensions.
const (
	extServerName        = 0
	extALPN              = 16
	extEncryptThenMAC    = 22
	extSessionTicket     = 35
	extEarlyData         = 42
	extSupportedVersions = 43
)

// helloRetry is the random of a HelloRetryRequest (RFC 8446 section 4.1.3).
var helloRetry = sha256.Sum256([]byte("HelloRetryRequest"))

// maxMessage bounds a handshake message held whole; longer ones (certificate chains) are
// skipped, as nothing in them is needed.
const maxMessage = 64 << 10

// handshakeBuf reassembles one direction's handshake messages from the records that carry
// them.
type handshakeBuf struct {
	buf  []byte
	skip int // bytes of an oversized message still to skip
}

// add takes the handshake bytes of a record and calls f with each whole message (type and
// body, without the 4-byte header).
func (h *handshakeBuf) add(b []byte, f func(typ byte, body []byte)) {
	for len(b) > 0 {
		if h.skip > 0 {
			k := min(h.skip, len(b))
			h.skip -= k
			b = b[k:]
			continue
		}
		if len(h.buf) == 0 && len(b) >= 4 {
			if n := 4 + int(u24(b[1:])); n <= len(b) {
				f(b[0], b[4:n]) // whole in this record: no copy
				b = b[n:]
				continue
			}
		}
		if len(h.buf) < 4 {
			k := min(4-len(h.buf), len(b))
			h.buf = append(h.buf, b[:k]...)
			b = b[k:]
			if len(h.buf) < 4 {
				return
			}
			if n := 4 + int(u24(h.buf[1:])); n > maxMessage {
				h.skip, h.buf = n-4, h.buf[:0]
				continue
			}
		}
		n := 4 + int(u24(h.buf[1:]))
		k := min(n-len(h.buf), len(b))
		h.buf = append(h.buf, b[:k]...)
		b = b[k:]
		if len(h.buf) == n {
			f(h.buf[0], h.buf[4:])
			h.buf = h.buf[:0]
		}
	}
}

func u24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }

// reader reads big-endian fields; reads past the end yield zero values and empty slices,
// and set bad.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if n > len(r.b) {
		r.bad = true
		n = len(r.b)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() int {
	v := r.take(1)
	if len(v) < 1 {
		return 0
	}
	return int(v[0])
}

func (r *reader) u16() int {
	v := r.take(2)
	if len(v) < 2 {
		return 0
	}
	return int(binary.BigEndian.Uint16(v))
}

// vec reads a vector with a length prefix of size bytes (1 or 2).
func (r *reader) vec(size int) []byte {
	n := r.u8()
	if size == 2 {
		n = n<<8 | r.u8()
	}
	return r.take(n)
}

// clientHello is what a ClientHello tells.
type clientHello struct {
	random     Random
	sessionID  []byte // TLS 1.2 resumption by session ID
	ticket     []byte // TLS 1.2 resumption by session ticket (RFC 5077)
	serverName string
	alpn       []string
	earlyData  bool
}

func parseClientHello(body []byte) (h clientHello, ok bool) {
	r := reader{b: body}
	r.take(2) // legacy version
	copy(h.random[:], r.take(32))
	h.sessionID = bytes.Clone(r.vec(1))
	r.vec(2) // cipher suites
	r.vec(1) // compression methods
	if r.bad {
		return h, false
	}
	exts := reader{b: r.vec(2)}
	for len(exts.b) >= 4 {
		typ := exts.u16()
		e := reader{b: exts.vec(2)}
		switch typ {
		case extServerName:
			list := reader{b: e.vec(2)}
			for len(list.b) >= 3 && h.serverName == "" {
				nt := list.u8()
				if host := list.vec(2); nt == 0 {
					h.serverName = string(host)
				}
			}
		case extALPN:
			h.alpn = alpnList(e.vec(2))
		case extEarlyData:
			h.earlyData = true
		case extSessionTicket:
			h.ticket = bytes.Clone(e.b)
		}
	}
	return h, true
}

func alpnList(b []byte) []string {
	var out []string
	list := reader{b: b}
	for len(list.b) > 0 && len(out) < 16 {
		if p := list.vec(1); len(p) > 0 {
			out = append(out, string(p))
		}
	}
	return out
}

// serverHello is what a ServerHello tells.
type serverHello struct {
	random    Random
	sessionID []byte
	version   uint16 // the negotiated version (supported_versions for TLS 1.3)
	suite     uint16
	etm       bool   // encrypt-then-MAC (TLS 1.2 CBC)
	alpn      string // the protocol selected (TLS 1.2; TLS 1.3 says it in EncryptedExtensions)
	retry     bool   // a HelloRetryRequest: the real ServerHello comes later
}

func parseServerHello(body []byte) (h serverHello, ok bool) {
	r := reader{b: body}
	h.version = uint16(r.u16())
	copy(h.random[:], r.take(32))
	h.sessionID = bytes.Clone(r.vec(1))
	h.suite = uint16(r.u16())
	r.u8() // compression method
	if r.bad {
		return h, false
	}
	h.retry = bytes.Equal(h.random[:], helloRetry[:])
	exts := reader{b: r.vec(2)}
	for len(exts.b) >= 4 {
		typ := exts.u16()
		e := reader{b: exts.vec(2)}
		switch typ {
		case extSupportedVersions:
			if v := e.u16(); !e.bad {
				h.version = uint16(v)
			}
		case extEncryptThenMAC:
			h.etm = true
		case extALPN:
			if l := alpnList(e.vec(2)); len(l) > 0 {
				h.alpn = l[0]
			}
		}
	}
	return h, true
}

// encryptedExtensionsALPN returns the protocol that a TLS 1.3 EncryptedExtensions selects.
func encryptedExtensionsALPN(body []byte) string {
	r := reader{b: body}
	exts := reader{b: r.vec(2)}
	for len(exts.b) >= 4 {
		typ := exts.u16()
		e := reader{b: exts.vec(2)}
		if typ == extALPN {
			if l := alpnList(e.vec(2)); len(l) > 0 {
				return l[0]
			}
		}
	}
	return ""
}

// newSessionTicket returns the ticket of a TLS 1.2 NewSessionTicket (RFC 5077 section 3.3).
func newSessionTicket(body []byte) []byte {
	r := reader{b: body}
	r.take(4) // lifetime hint
	t := r.vec(2)
	if r.bad {
		return nil
	}
	return bytes.Clone(t)
}
