package tlsdecrypt

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// cipherKind is the record protection of a cipher suite.
type cipherKind uint8

const (
	aesGCM cipherKind = iota + 1
	chacha
	aesCBC
)

// suite is a cipher suite this package decrypts.
type suite struct {
	name   string
	tls13  bool
	kind   cipherKind
	keyLen int
	mac    func() hash.Hash // CBC: the record MAC
	prf    func() hash.Hash // TLS 1.2: the PRF's hash; TLS 1.3: the HKDF hash
}

var (
	sha256New = sha256.New
	sha384New = sha512.New384
	sha1New   = sha1.New
)

// suites are the cipher suites decrypted here, by their IANA number.
var suites = map[uint16]suite{
	// TLS 1.3 (RFC 8446)
	0x1301: {"TLS_AES_128_GCM_SHA256", true, aesGCM, 16, nil, sha256New},
	0x1302: {"TLS_AES_256_GCM_SHA384", true, aesGCM, 32, nil, sha384New},
	0x1303: {"TLS_CHACHA20_POLY1305_SHA256", true, chacha, 32, nil, sha256New},
	// TLS 1.2 AES-GCM (RFC 5288, 5289, 5487)
	0x009c: {"TLS_RSA_WITH_AES_128_GCM_SHA256", false, aesGCM, 16, nil, sha256New},
	0x009d: {"TLS_RSA_WITH_AES_256_GCM_SHA384", false, aesGCM, 32, nil, sha384New},
	0x009e: {"TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", false, aesGCM, 16, nil, sha256New},
	0x009f: {"TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", false, aesGCM, 32, nil, sha384New},
	0x00a8: {"TLS_PSK_WITH_AES_128_GCM_SHA256", false, aesGCM, 16, nil, sha256New},
	0x00a9: {"TLS_PSK_WITH_AES_256_GCM_SHA384", false, aesGCM, 32, nil, sha384New},
	0xc02b: {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", false, aesGCM, 16, nil, sha256New},
	0xc02c: {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", false, aesGCM, 32, nil, sha384New},
	0xc02f: {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", false, aesGCM, 16, nil, sha256New},
	0xc030: {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", false, aesGCM, 32, nil, sha384New},
	// TLS 1.2 ChaCha20-Poly1305 (RFC 7905)
	0xcca8: {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false, chacha, 32, nil, sha256New},
	0xcca9: {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", false, chacha, 32, nil, sha256New},
	0xccaa: {"TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false, chacha, 32, nil, sha256New},
	0xccab: {"TLS_PSK_WITH_CHACHA20_POLY1305_SHA256", false, chacha, 32, nil, sha256New},
	0xccac: {"TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256", false, chacha, 32, nil, sha256New},
	// TLS 1.2 AES-CBC with HMAC-SHA1, SHA-256, SHA-384 (RFC 5246, 5289, 4279, 5487)
	0x002f: {"TLS_RSA_WITH_AES_128_CBC_SHA", false, aesCBC, 16, sha1New, sha256New},
	0x0035: {"TLS_RSA_WITH_AES_256_CBC_SHA", false, aesCBC, 32, sha1New, sha256New},
	0x0033: {"TLS_DHE_RSA_WITH_AES_128_CBC_SHA", false, aesCBC, 16, sha1New, sha256New},
	0x0039: {"TLS_DHE_RSA_WITH_AES_256_CBC_SHA", false, aesCBC, 32, sha1New, sha256New},
	0x003c: {"TLS_RSA_WITH_AES_128_CBC_SHA256", false, aesCBC, 16, sha256New, sha256New},
	0x003d: {"TLS_RSA_WITH_AES_256_CBC_SHA256", false, aesCBC, 32, sha256New, sha256New},
	0x0067: {"TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", false, aesCBC, 16, sha256New, sha256New},
	0x006b: {"TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", false, aesCBC, 32, sha256New, sha256New},
	0x008c: {"TLS_PSK_WITH_AES_128_CBC_SHA", false, aesCBC, 16, sha1New, sha256New},
	0x008d: {"TLS_PSK_WITH_AES_256_CBC_SHA", false, aesCBC, 32, sha1New, sha256New},
	0x00ae: {"TLS_PSK_WITH_AES_128_CBC_SHA256", false, aesCBC, 16, sha256New, sha256New},
	0x00af: {"TLS_PSK_WITH_AES_256_CBC_SHA384", false, aesCBC, 32, sha384New, sha384New},
	0xc009: {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", false, aesCBC, 16, sha1New, sha256New},
	0xc00a: {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", false, aesCBC, 32, sha1New, sha256New},
	0xc013: {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", false, aesCBC, 16, sha1New, sha256New},
	0xc014: {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", false, aesCBC, 32, sha1New, sha256New},
	0xc023: {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", false, aesCBC, 16, sha256New, sha256New},
	0xc024: {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", false, aesCBC, 32, sha384New, sha384New},
	0xc027: {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", false, aesCBC, 16, sha256New, sha256New},
	0xc028: {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", false, aesCBC, 32, sha384New, sha384New},
	0xc035: {"TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA", false, aesCBC, 16, sha1New, sha256New},
	0xc036: {"TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA", false, aesCBC, 32, sha1New, sha256New},
	0xc037: {"TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256", false, aesCBC, 16, sha256New, sha256New},
	0xc038: {"TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384", false, aesCBC, 32, sha384New, sha384New},
}

// otherSuites name cipher suites seen in the field that this package does not decrypt.
var otherSuites = map[uint16]string{
	0x1304: "TLS_AES_128_CCM_SHA256",
	0x1305: "TLS_AES_128_CCM_8_SHA256",
	0x000a: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
	0x0005: "TLS_RSA_WITH_RC4_128_SHA",
	0xc012: "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
	0xc0a0: "TLS_RSA_WITH_AES_128_CCM_8",
	0xc0a4: "TLS_PSK_WITH_AES_128_CCM",
	0xc0a8: "TLS_PSK_WITH_AES_128_CCM_8",
	0xc0ac: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
	0xc0ae: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
	0x00ad: "TLS_RSA_PSK_WITH_AES_256_GCM_SHA384",
}

// SuiteName returns the IANA name of a cipher suite, or its number in hex when unknown.
func SuiteName(id uint16) string {
	if s, ok := suites[id]; ok {
		return s.name
	}
	if n, ok := otherSuites[id]; ok {
		return n
	}
	return fmt.Sprintf("0x%04X", id)
}

// VersionName returns "TLS 1.2", "TLS 1.3"... for a protocol version number.
func VersionName(v uint16) string {
	switch v {
	case 0x0300:
		return "SSL 3.0"
	case 0x0301, 0x0302, 0x0303, 0x0304:
		return fmt.Sprintf("TLS 1.%d", v-0x0301)
	case 0:
		return ""
	}
	return fmt.Sprintf("0x%04X", v)
}
