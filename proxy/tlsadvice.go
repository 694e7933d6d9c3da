package proxy

import (
	"fmt"
	"strings"
)

// tlsAdvice explains a failed device-facing TLS handshake: the cause Go's error names (the
// alert the device sent, or what the proxy found wrong with its ClientHello) and what to do.
// sni is the name the device asked for ("" when none). It returns "" when the error names no
// cause it knows.
func tlsAdvice(err error, sni string) string {
	msg := err.Error()
	name := "the name it asked for"
	if sni != "" {
		name = fmt.Sprintf("the name it asked for (%q)", sni)
	}
	switch {
	case strings.Contains(msg, "unknown certificate authority"):
		return "the device does not trust mqscope's CA: install ca.pem (from 'mqscope ca init') on it, or give --cert/--key it trusts"
	case strings.Contains(msg, "bad certificate"), strings.Contains(msg, "certificate unknown"), strings.Contains(msg, "unsupported certificate"):
		return fmt.Sprintf("the device rejected mqscope's certificate: it does not trust mqscope's CA (install ca.pem from 'mqscope ca init' on it), or %s is not in the certificate given with --cert", name)
	case strings.Contains(msg, "no cipher suite supported by both"), strings.Contains(msg, "handshake failure"), strings.Contains(msg, "insufficient security"):
		return "the device and mqscope share no cipher suite or TLS version: the device offers only ones Go's TLS does not support (mqscope accepts TLS 1.2 and 1.3)"
	case strings.Contains(msg, "protocol version not supported"), strings.Contains(msg, "unsupported versions"):
		return "the device and mqscope share no TLS version (mqscope accepts TLS 1.2 and 1.3)"
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return "the device speaks plain MQTT to a TLS listener: listen without tls:// or turn TLS on in the device"
	case strings.Contains(msg, "bad record MAC"), strings.Contains(msg, "decrypt error"):
		return "the device could not read mqscope's messages (bad record MAC): often a device that does not trust mqscope's certificate and gives up this way; install ca.pem (from 'mqscope ca init') on it"
	}
	return ""
}
