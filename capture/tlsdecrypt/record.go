package tlsdecrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// Record limits (RFC 8446 section 5.2, RFC 5246 section 6.2.3): a record's body is at most
// 2^14 bytes of plaintext plus 2048 of protection; TLS 1.3 allows only 256.
const (
	headerLen = 5
	maxBody   = 1<<14 + 2048
	// minSealed is the shortest protected record body (a ChaCha20-Poly1305 tag and, in TLS
	// 1.3, the content type): resynchronising after a loss counts records by it.
	minSealed = 17
)

var (
	errAuth  = errors.New("record authentication failed")
	errShort = errors.New("record too short for its protection")
	errEmpty = errors.New("TLS 1.3 record without a content type")
)

// recordCipher removes the protection of one direction's records under one key.
type recordCipher interface {
	// open returns the content type and the plaintext of the record with header hdr and
	// body body, sealed with sequence number seq. The plaintext is written into dst's
	// array when it is large enough; body is not changed.
	open(dst []byte, seq uint64, hdr, body []byte) (typ byte, plain []byte, err error)
	// seqHint returns the sequence number the record shows, when it shows one (the explicit
	// nonce of TLS 1.2 AES-GCM, by most implementations the sequence number).
	seqHint(body []byte) (uint64, bool)
}

// aead13 is TLS 1.3 record protection (RFC 8446 section 5.2).
type aead13 struct {
	aead cipher.AEAD
	iv   [12]byte
}

func (c *aead13) open(dst []byte, seq uint64, hdr, body []byte) (byte, []byte, error) {
	nonce := c.iv
	xorSeq(&nonce, seq)
	p, err := c.aead.Open(dst[:0], nonce[:], body, hdr)
	if err != nil {
		return 0, nil, errAuth
	}
	// TLSInnerPlaintext: content, content type, zero padding.
	i := len(p) - 1
	for i >= 0 && p[i] == 0 {
		i--
	}
	if i < 0 {
		return 0, nil, errEmpty
	}
	return p[i], p[:i], nil
}

func (c *aead13) seqHint([]byte) (uint64, bool) { return 0, false }

func xorSeq(nonce *[12]byte, seq uint64) {
	for i := range 8 {
		nonce[4+i] ^= byte(seq >> (56 - 8*i))
	}
}

// aead12 is TLS 1.2 AEAD record protection: AES-GCM with its 8-byte explicit nonce
// (RFC 5288), or ChaCha20-Poly1305 with a nonce made from the sequence number (RFC 7905).
type aead12 struct {
	aead     cipher.AEAD
	iv       [12]byte // AES-GCM: the 4-byte salt
	explicit bool
}

func (c *aead12) open(dst []byte, seq uint64, hdr, body []byte) (byte, []byte, error) {
	var nonce [12]byte
	ct := body
	if c.explicit {
		if len(body) < 8 {
			return 0, nil, errShort
		}
		copy(nonce[:4], c.iv[:4])
		copy(nonce[4:], body[:8])
		ct = body[8:]
	} else {
		nonce = c.iv
		xorSeq(&nonce, seq)
	}
	n := len(ct) - c.aead.Overhead()
	if n < 0 {
		return 0, nil, errShort
	}
	ad := additionalData(seq, hdr, n)
	p, err := c.aead.Open(dst[:0], nonce[:], ct, ad[:])
	if err != nil {
		return 0, nil, errAuth
	}
	return hdr[0], p, nil
}

func (c *aead12) seqHint(body []byte) (uint64, bool) {
	if !c.explicit || len(body) < 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(body), true
}

// additionalData is what TLS 1.2 authenticates besides the content: sequence number, type,
// version and plaintext length (RFC 5246 section 6.2.3.1).
func additionalData(seq uint64, hdr []byte, n int) [13]byte {
	var ad [13]byte
	binary.BigEndian.PutUint64(ad[:], seq)
	ad[8], ad[9], ad[10] = hdr[0], hdr[1], hdr[2]
	binary.BigEndian.PutUint16(ad[11:], uint16(n))
	return ad
}

// cbc12 is TLS 1.2 (and 1.1) AES-CBC with an HMAC: MAC then encrypt (RFC 5246 section
// 6.2.3.2), or encrypt then MAC when both sides agreed to it (RFC 7366).
type cbc12 struct {
	block cipher.Block
	mac   hash.Hash
	etm   bool
	sum   []byte
}

func (c *cbc12) open(dst []byte, seq uint64, hdr, body []byte) (byte, []byte, error) {
	bs, ml := c.block.BlockSize(), c.mac.Size()
	if c.etm {
		if len(body) < bs+ml {
			return 0, nil, errShort
		}
		data, tag := body[:len(body)-ml], body[len(body)-ml:]
		if !c.checkMAC(seq, hdr, data, tag) {
			return 0, nil, errAuth
		}
		p, ok := c.decrypt(dst, data)
		if !ok {
			return 0, nil, errAuth
		}
		return hdr[0], p, nil
	}
	p, ok := c.decrypt(dst, body)
	if !ok || len(p) < ml {
		return 0, nil, errAuth
	}
	content, tag := p[:len(p)-ml], p[len(p)-ml:]
	if !c.checkMAC(seq, hdr, content, tag) {
		return 0, nil, errAuth
	}
	return hdr[0], content, nil
}

// decrypt decrypts an explicit IV and the blocks after it into dst and removes the padding.
func (c *cbc12) decrypt(dst, data []byte) ([]byte, bool) {
	bs := c.block.BlockSize()
	if len(data) < 2*bs || len(data)%bs != 0 {
		return nil, false
	}
	ct := data[bs:]
	if cap(dst) < len(ct) {
		dst = make([]byte, len(ct))
	}
	p := dst[:len(ct)]
	cipher.NewCBCDecrypter(c.block, data[:bs]).CryptBlocks(p, ct)
	pad := int(p[len(p)-1])
	if pad+1 > len(p) {
		return nil, false
	}
	for _, b := range p[len(p)-pad-1:] {
		if int(b) != pad {
			return nil, false
		}
	}
	return p[:len(p)-pad-1], true
}

func (c *cbc12) checkMAC(seq uint64, hdr, data, tag []byte) bool {
	ad := additionalData(seq, hdr, len(data))
	c.mac.Reset()
	c.mac.Write(ad[:])
	c.mac.Write(data)
	c.sum = c.mac.Sum(c.sum[:0])
	return hmac.Equal(c.sum, tag)
}

func (c *cbc12) seqHint([]byte) (uint64, bool) { return 0, false }

// newAEAD returns the AEAD of a suite with key.
func newAEAD(kind cipherKind, key []byte) (cipher.AEAD, error) {
	if kind == chacha {
		return chacha20poly1305.New(key)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// expandLabel is HKDF-Expand-Label (RFC 8446 section 7.1) with an empty context.
func expandLabel(h func() hash.Hash, secret []byte, label string, n int) ([]byte, error) {
	full := "tls13 " + label
	info := make([]byte, 0, 4+len(full))
	info = binary.BigEndian.AppendUint16(info, uint16(n))
	info = append(info, byte(len(full)))
	info = append(info, full...)
	info = append(info, 0)
	return hkdf.Expand(h, secret, string(info), n)
}

// cipher13 returns the record protection of a TLS 1.3 traffic secret.
func cipher13(s suite, secret []byte) (recordCipher, error) {
	key, err := expandLabel(s.prf, secret, "key", s.keyLen)
	if err != nil {
		return nil, err
	}
	iv, err := expandLabel(s.prf, secret, "iv", 12)
	if err != nil {
		return nil, err
	}
	a, err := newAEAD(s.kind, key)
	if err != nil {
		return nil, err
	}
	c := &aead13{aead: a}
	copy(c.iv[:], iv)
	return c, nil
}

// nextSecret is the traffic secret after a KeyUpdate (RFC 8446 section 7.2).
func nextSecret(s suite, secret []byte) ([]byte, error) {
	return expandLabel(s.prf, secret, "traffic upd", s.prf().Size())
}

// prf12 is the TLS 1.2 PRF, P_hash (RFC 5246 section 5).
func prf12(h func() hash.Hash, secret []byte, label string, seed []byte, n int) []byte {
	mac := hmac.New(h, secret)
	ls := append([]byte(label), seed...)
	out := make([]byte, 0, n+mac.Size())
	a := ls
	for len(out) < n {
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(nil)
		mac.Reset()
		mac.Write(a)
		mac.Write(ls)
		out = mac.Sum(out)
	}
	return out[:n]
}

// ciphers12 returns the record protection of both directions of a TLS 1.2 connection from
// its master secret (RFC 5246 section 6.3).
func ciphers12(s suite, master []byte, client, server Random, etm bool) (c2s, s2c recordCipher, err error) {
	macLen, ivLen := 0, 0
	switch s.kind {
	case aesGCM:
		ivLen = 4
	case chacha:
		ivLen = 12
	case aesCBC:
		macLen = s.mac().Size()
	}
	seed := append(append([]byte{}, server[:]...), client[:]...)
	kb := prf12(s.prf, master, "key expansion", seed, 2*(macLen+s.keyLen+ivLen))
	take := func(n int) []byte {
		v := kb[:n]
		kb = kb[n:]
		return v
	}
	macs := [2][]byte{take(macLen), take(macLen)}
	keys := [2][]byte{take(s.keyLen), take(s.keyLen)}
	ivs := [2][]byte{take(ivLen), take(ivLen)}
	var out [2]recordCipher
	for i := range out {
		if s.kind == aesCBC {
			b, err := aes.NewCipher(keys[i])
			if err != nil {
				return nil, nil, err
			}
			out[i] = &cbc12{block: b, mac: hmac.New(s.mac, macs[i]), etm: etm}
			continue
		}
		a, err := newAEAD(s.kind, keys[i])
		if err != nil {
			return nil, nil, err
		}
		c := &aead12{aead: a, explicit: s.kind == aesGCM}
		copy(c.iv[:], ivs[i])
		out[i] = c
	}
	return out[0], out[1], nil
}
