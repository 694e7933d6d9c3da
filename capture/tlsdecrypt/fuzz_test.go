package tlsdecrypt

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	mrand "math/rand/v2"
	"testing"
)

// fuzzSessions are real sessions (TLS 1.3 and TLS 1.2 with each cipher family) whose bytes
// the fuzzer damages.
func fuzzSessions(f *testing.F) []*session {
	ec, rs := certs(f)
	var out []*session
	for _, c := range []struct {
		v     uint16
		suite uint16
		cert  tls.Certificate
	}{
		{tls.VersionTLS13, 0, ec},
		{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, ec},
		{tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, rs},
		{tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, rs},
	} {
		cfg := &tls.Config{MinVersion: c.v, MaxVersion: c.v, Certificates: []tls.Certificate{c.cert}}
		if c.suite != 0 {
			cfg.CipherSuites = []uint16{c.suite}
		}
		out = append(out, runSession(f, cfg, cfg, []byte("connect"), bytes.Repeat([]byte("x"), 40000), []byte("bye")))
	}
	return out
}

// FuzzConn feeds a Conn the bytes of a real session with the key log, damaged as the fuzzer
// says: bytes changed, cut out (told as gaps, or not), inserted, the pieces split anywhere.
// Whatever comes, it must not panic, must hold no more than its bounds, and every byte it
// delivers must be a byte the peer sent, in order, when nothing was changed but losses.
func FuzzConn(f *testing.F) {
	sessions := fuzzSessions(f)
	f.Add(uint8(0), uint64(1), []byte{})
	f.Add(uint8(1), uint64(2), []byte{0, 10, 100, 1, 0, 200, 30, 2})
	f.Add(uint8(2), uint64(3), []byte{1, 1, 5, 0, 0, 0, 0, 0, 2, 0, 40})
	f.Add(uint8(3), uint64(4), []byte{0, 0, 60, 1, 1, 0x50, 0x20})
	f.Fuzz(func(t *testing.T, which uint8, seed uint64, edits []byte) {
		s := sessions[int(which)%len(sessions)]
		wire := [2][]byte{bytes.Clone(s.wire[0]), bytes.Clone(s.wire[1])}
		var out sink
		c := NewConn(keysOf(t, s.keylog), &out)
		rng := mrand.New(mrand.NewPCG(seed, 7))
		changed := false
		// Each edit: op, direction, position (2 bytes), length.
		for len(edits) >= 5 && len(wire[0])+len(wire[1]) > 0 {
			op, d := edits[0]%4, int(edits[1]%2)
			at := int(binary.BigEndian.Uint16(edits[2:]))
			n := int(edits[4]) + 1
			edits = edits[5:]
			if at >= len(wire[d]) {
				continue
			}
			// Feed what comes before the edit, in pieces, interleaved with the other side.
			head := wire[d][:at]
			for len(head) > 0 {
				k := min(1+rng.IntN(2000), len(head))
				c.Data(Dir(d), head[:k])
				head = head[k:]
				if o := wire[d^1]; len(o) > 0 && rng.IntN(2) == 0 {
					k := min(1+rng.IntN(2000), len(o))
					c.Data(Dir(d^1), o[:k])
					wire[d^1] = o[k:]
				}
			}
			rest := wire[d][at:]
			n = min(n, len(rest))
			switch op {
			case 0: // lost, and told
				c.Gap(Dir(d), n)
				rest = rest[n:]
			case 1: // changed
				rest[0] ^= byte(n) | 1
				changed = true
			case 2: // lost without a word
				rest = rest[n:]
				changed = true
			case 3: // bytes that were never sent
				c.Data(Dir(d), bytes.Repeat([]byte{byte(n)}, n))
				changed = true
			}
			wire[d] = rest
		}
		feed(c, wire, rng)
		for d := range 2 {
			h := &c.h[d]
			if h.heldBytes > maxHeld || len(h.buf) > 2*(headerLen+maxBody) || len(h.hs.buf) > maxMessage {
				t.Fatalf("%s: holds %d bytes of records, %d of a buffer, %d of a handshake message", Dir(d).sender(), h.heldBytes, len(h.buf), len(h.hs.buf))
			}
			if !changed && !inOrder(out.pieces[d], s.plain[d]) {
				t.Fatalf("%s: delivered bytes the peer did not send in that order", Dir(d).sender())
			}
		}
	})
}

// inOrder says whether each piece is found in b after the one before it: what a decrypter
// that only loses whole records may deliver.
func inOrder(pieces [][]byte, b []byte) bool {
	for _, p := range pieces {
		i := bytes.Index(b, p)
		if i < 0 {
			return false
		}
		b = b[i+len(p):]
	}
	return true
}

// FuzzRecord opens random records with each kind of record protection: no panic, and
// nothing opens that was not sealed (an authentication failure or an error, never a
// plaintext).
func FuzzRecord(f *testing.F) {
	f.Add([]byte{23, 3, 3, 0, 20}, []byte("0123456789abcdef0123456789abcdef"), uint64(0), uint8(0))
	f.Add([]byte{23, 3, 3, 0, 40}, bytes.Repeat([]byte{7}, 48), uint64(5), uint8(3))
	f.Fuzz(func(t *testing.T, rec []byte, secret []byte, seq uint64, which uint8) {
		if len(rec) < headerLen || len(secret) == 0 {
			return
		}
		ids := []uint16{0x1301, 0x1302, 0x1303, 0xc02f, 0xcca8, 0xc013, 0xc027, 0xc028}
		id := ids[int(which)%len(ids)]
		s := suites[id]
		var rc recordCipher
		var err error
		if s.tls13 {
			rc, err = cipher13(s, secret)
		} else {
			var r1, r2 Random
			copy(r1[:], secret)
			copy(r2[:], rec)
			master := bytes.Repeat(secret, 48/len(secret)+1)[:48]
			rc, _, err = ciphers12(s, master, r1, r2, which&0x80 != 0)
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := make([]byte, 0, maxBody+256)
		if _, p, err := rc.open(dst, seq, rec[:headerLen], rec[headerLen:]); err == nil {
			t.Fatalf("%s: a random record opened: %x", s.name, p)
		}
		rc.seqHint(rec[headerLen:])
	})
}
