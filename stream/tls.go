package stream

// TLSInfo is what is known of the TLS of a captured connection that was decrypted with its
// session keys, or that keys were given to decrypt.
type TLSInfo struct {
	Version    string // "TLS 1.3", "TLS 1.2"; "" when the ServerHello was not seen
	Cipher     string // the cipher suite's IANA name ("" when not seen)
	ServerName string // the server name of the ClientHello (SNI)
	ALPN       string // the application protocol the server selected ("" when none)
	// Decrypted says that the connection's bytes are delivered decrypted; when false,
	// Problem says why not, and no bytes are delivered. When true, Problem says what part of
	// them could not be decrypted, if any.
	Decrypted bool
	Problem   string
}
