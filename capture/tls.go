package capture

import (
	"encoding/binary"
	"strings"
)

// hello is what a TLS ClientHello tells about its connection.
type hello struct {
	serverName string   // the server_name extension's host name
	alpn       []string // the application protocols offered (ALPN)
}

// mqttALPN says whether one of the protocols offered names MQTT: "mqtt" (the name in IANA's
// registry) or a vendor's (AWS IoT's "x-amzn-mqtt-ca" on port 443).
func (h hello) mqttALPN() bool {
	for _, p := range h.alpn {
		if strings.Contains(strings.ToLower(p), "mqtt") {
			return true
		}
	}
	return false
}

// parseClientHello reads the TLS ClientHello at the start of b. complete is false while b ends
// inside the first record; a malformed or foreign record is complete and tells nothing.
func parseClientHello(b []byte) (h hello, complete bool) {
	if len(b) < 5 {
		return h, len(b) > 0 && b[0] != 0x16
	}
	if b[0] != 0x16 { // not a handshake record
		return h, true
	}
	n := int(binary.BigEndian.Uint16(b[3:]))
	if len(b) < 5+n {
		return h, false
	}
	r := reader(b[5 : 5+n])
	if t, ok := r.u8(); !ok || t != 1 { // ClientHello
		return h, true
	}
	r.skip(3 + 2 + 32) // length, legacy version, random
	r.vec(1)           // session id
	r.vec(2)           // cipher suites
	r.vec(1)           // compression methods
	exts := reader(r.vec(2))
	for len(exts) >= 4 {
		typ, _ := exts.u16()
		body := reader(exts.vec(2))
		switch typ {
		case 0: // server_name
			list := reader(body.vec(2))
			for len(list) >= 3 && h.serverName == "" {
				nt, _ := list.u8()
				if host := list.vec(2); nt == 0 {
					h.serverName = string(host)
				}
			}
		case 16: // application_layer_protocol_negotiation
			list := reader(body.vec(2))
			for len(list) > 0 && len(h.alpn) < 16 {
				if p := list.vec(1); len(p) > 0 {
					h.alpn = append(h.alpn, string(p))
				}
			}
		}
	}
	return h, true
}

// reader reads big-endian fields; reads past the end yield zero values and empty slices.
type reader []byte

func (r *reader) u8() (byte, bool) {
	if len(*r) < 1 {
		return 0, false
	}
	v := (*r)[0]
	*r = (*r)[1:]
	return v, true
}

func (r *reader) u16() (int, bool) {
	if len(*r) < 2 {
		*r = nil
		return 0, false
	}
	v := int(binary.BigEndian.Uint16(*r))
	*r = (*r)[2:]
	return v, true
}

func (r *reader) skip(n int) {
	if n > len(*r) {
		n = len(*r)
	}
	*r = (*r)[n:]
}

// vec reads a vector with a length prefix of size bytes.
func (r *reader) vec(size int) []byte {
	var n int
	if size == 1 {
		v, _ := r.u8()
		n = int(v)
	} else {
		n, _ = r.u16()
	}
	if n > len(*r) {
		n = len(*r)
	}
	v := (*r)[:n]
	*r = (*r)[n:]
	return v
}
