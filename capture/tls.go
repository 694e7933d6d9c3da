package capture

import "encoding/binary"

// serverName reads the server_name extension of the TLS ClientHello at the start of b.
// complete is false while b ends inside the first record; a malformed or foreign record is
// complete with no name.
func serverName(b []byte) (name string, complete bool) {
	if len(b) < 5 {
		return "", len(b) > 0 && b[0] != 0x16
	}
	if b[0] != 0x16 { // not a handshake record
		return "", true
	}
	n := int(binary.BigEndian.Uint16(b[3:]))
	if len(b) < 5+n {
		return "", false
	}
	r := reader(b[5 : 5+n])
	if t, ok := r.u8(); !ok || t != 1 { // ClientHello
		return "", true
	}
	r.skip(3 + 2 + 32) // length, legacy version, random
	r.vec(1)           // session id
	r.vec(2)           // cipher suites
	r.vec(1)           // compression methods
	exts := reader(r.vec(2))
	for len(exts) >= 4 {
		typ, _ := exts.u16()
		body := reader(exts.vec(2))
		if typ != 0 { // server_name
			continue
		}
		list := reader(body.vec(2))
		for len(list) >= 3 {
			nt, _ := list.u8()
			host := list.vec(2)
			if nt == 0 {
				return string(host), true
			}
		}
	}
	return "", true
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
