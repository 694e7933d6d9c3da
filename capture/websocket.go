package capture

import (
	"bytes"
	"encoding/binary"
	"time"
)

// upgrade follows an HTTP request that may upgrade the connection to WebSocket with an MQTT
// subprotocol (RFC 6455 section 4; MQTT 5.0 section 6). Once both the request and the
// 101 response are complete, the connection is opened as MQTT over WebSocket; anything else
// makes it kindOther.
func (s *stream) upgrade(t time.Time) {
	c := &s.half[s.rd(ClientToServer)]
	sv := &s.half[s.rd(ServerToClient)]
	i := bytes.Index(c.pre, []byte("\r\n\r\n"))
	if i < 0 {
		return
	}
	path, ok := wsRequest(c.pre[:i])
	if !ok {
		s.kind = kindOther
		c.pre, sv.pre = nil, nil
		return
	}
	j := bytes.Index(sv.pre, []byte("\r\n\r\n"))
	if j < 0 {
		return
	}
	status := sv.pre[:j]
	if k := bytes.IndexByte(status, '\n'); k >= 0 {
		status = status[:k]
	}
	if f := bytes.Fields(status); len(f) < 2 || string(f[1]) != "101" {
		s.kind = kindOther
		c.pre, sv.pre = nil, nil
		return
	}
	s.info.Path = path
	c.pre = c.pre[i+4:]
	sv.pre = sv.pre[j+4:]
	s.open(t, WebSocket)
}

// wsRequest checks an HTTP request head for a WebSocket upgrade offering an MQTT
// subprotocol ("mqtt", or "mqttv3.1" of old clients) and returns its path.
func wsRequest(head []byte) (path string, ok bool) {
	lines := bytes.Split(head, []byte("\r\n"))
	f := bytes.Fields(lines[0])
	if len(f) < 3 || string(f[0]) != "GET" {
		return "", false
	}
	var upgrade, mqtt bool
	for _, l := range lines[1:] {
		k, v, found := bytes.Cut(l, []byte(":"))
		if !found {
			continue
		}
		k, v = bytes.TrimSpace(k), bytes.ToLower(bytes.TrimSpace(v))
		switch {
		case bytes.EqualFold(k, []byte("Upgrade")):
			upgrade = bytes.Contains(v, []byte("websocket"))
		case bytes.EqualFold(k, []byte("Sec-WebSocket-Protocol")):
			for _, p := range bytes.Split(v, []byte(",")) {
				if bytes.HasPrefix(bytes.TrimSpace(p), []byte("mqtt")) {
					mqtt = true
				}
			}
		}
	}
	return string(f[1]), upgrade && mqtt
}

// wsReader takes WebSocket frames apart as their bytes arrive, in any pieces.
type wsReader struct {
	hdr    [14]byte
	nh     int   // header bytes held
	left   int64 // payload bytes of the current frame still to come
	inData bool  // the current frame is a data frame (binary, text or continuation)
	mask   [4]byte
	masked bool
	mpos   int
	buf    []byte // unmasked payload, reused
}

// wsHeaderLen returns the length of the frame header starting with b0, b1.
func wsHeaderLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// wsData delivers the MQTT bytes carried by WebSocket frames in b.
func (s *stream) wsData(d Dir, t time.Time, b []byte) {
	h := &s.half[s.rd(d)]
	w := &h.ws
	for len(b) > 0 {
		if w.left == 0 {
			// Frame header.
			need := 2
			if w.nh >= 2 {
				need = wsHeaderLen(w.hdr[1])
			}
			for w.nh < need && len(b) > 0 {
				w.hdr[w.nh] = b[0]
				w.nh++
				b = b[1:]
				if w.nh == 2 {
					need = wsHeaderLen(w.hdr[1])
				}
			}
			if w.nh < need {
				return
			}
			op := w.hdr[0] & 0x0f
			length := int64(w.hdr[1] & 0x7f)
			p := 2
			switch length {
			case 126:
				length = int64(binary.BigEndian.Uint16(w.hdr[2:]))
				p += 2
			case 127:
				length = int64(binary.BigEndian.Uint64(w.hdr[2:]))
				p += 8
			}
			w.masked = w.hdr[1]&0x80 != 0
			if w.masked {
				copy(w.mask[:], w.hdr[p:p+4])
			}
			w.nh, w.mpos = 0, 0
			w.inData = op <= 2
			if op >= 3 && op <= 7 || op > 10 || length < 0 || (op >= 8 && length > 125) {
				// Not a frame: the WebSocket framing is lost for this direction.
				h.lost = true
				s.conn.Gap(d, t, 1)
				return
			}
			w.left = length
			continue
		}
		k := int(min(w.left, int64(len(b))))
		chunk := b[:k]
		b = b[k:]
		w.left -= int64(k)
		if !w.inData {
			continue
		}
		if w.masked {
			w.buf = append(w.buf[:0], chunk...)
			for i := range w.buf {
				w.buf[i] ^= w.mask[w.mpos&3]
				w.mpos++
			}
			chunk = w.buf
		}
		s.deliver(d, t, chunk)
		if s.kind != kindWS {
			return
		}
	}
}
