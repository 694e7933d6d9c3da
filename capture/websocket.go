package capture

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/mqscope/mqscope/stream"
)

// upgrade follows an HTTP request that may upgrade the connection to WebSocket with an MQTT
// subprotocol (RFC 6455 section 4; MQTT 5.0 section 6). Once both the request and the
// 101 response are complete, the connection is opened as MQTT over WebSocket; anything else
// makes it kindOther.
func (s *tcpConn) upgrade(t time.Time) {
	c := &s.half[s.rd(stream.C2S)]
	sv := &s.half[s.rd(stream.S2C)]
	i := bytes.Index(c.pre, []byte("\r\n\r\n"))
	if i < 0 {
		return
	}
	path, ok := wsRequest(c.pre[:i])
	if !ok {
		s.drop(whyNotUpgrade)
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
		s.drop(whyUpgradeRefused)
		return
	}
	s.info.Path = path
	c.pre = c.pre[i+4:]
	sv.pre = sv.pre[j+4:]
	s.open(t, stream.WebSocket)
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
	// After a gap: bytes held while looking for the next frame header.
	resync bool
	hold   []byte
}

// maxHold bounds the bytes held to find a frame header after a gap.
const maxHold = 64 << 10

// lose forgets the frame in progress: the next bytes are searched for a frame header.
func (w *wsReader) lose() {
	w.resync, w.hold, w.left, w.nh = true, w.hold[:0], 0, 0
}

// wsHeader parses a frame header at the start of b: ok when it is plausible for a frame
// of this direction (masked from the client, not from the server), its length in n and the
// header's in hl; more when b is too short to tell.
func wsHeader(b []byte, masked bool) (ok, more bool, hl int, n int64) {
	if len(b) < 2 {
		return false, true, 0, 0
	}
	op := b[0] & 0x0f
	if b[0]&0x70 != 0 || (op > 2 && op < 8) || op > 10 || (b[1]&0x80 != 0) != masked {
		return false, false, 0, 0
	}
	hl = wsHeaderLen(b[1])
	if len(b) < hl {
		return false, true, 0, 0
	}
	n = int64(b[1] & 0x7f)
	switch n {
	case 126:
		n = int64(binary.BigEndian.Uint16(b[2:]))
		if n < 126 {
			return false, false, 0, 0
		}
	case 127:
		u := binary.BigEndian.Uint64(b[2:])
		if u < 65536 || u > 1<<40 {
			return false, false, 0, 0
		}
		n = int64(u)
	}
	if op >= 8 && (b[0]&0x80 == 0 || n > 125) {
		return false, false, 0, 0
	}
	return true, false, hl, n
}

// resyncAt finds where the next frame starts in b: a plausible header followed by another
// one (or by the end of b, exactly); -1 when none yet.
func resyncAt(b []byte, masked, full bool) int {
	for i := range b {
		ok, more, hl, n := wsHeader(b[i:], masked)
		if more {
			return -1
		}
		if !ok {
			continue
		}
		next := int64(i+hl) + n
		switch {
		case next == int64(len(b)):
			return i
		case next < int64(len(b)):
			if ok2, more2, _, _ := wsHeader(b[next:], masked); ok2 || more2 {
				if ok2 {
					return i
				}
				return -1 // wait for the next header's bytes
			}
		case full:
			return i // cannot check further: take it
		default:
			return -1 // wait until the frame's end is held
		}
	}
	return -1
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
func (s *tcpConn) wsData(d stream.Dir, t time.Time, b []byte) {
	h := &s.half[s.rd(d)]
	w := &h.ws
	if w.resync {
		w.hold = append(w.hold, b...)
		if len(w.hold) > maxHold {
			w.hold = append(w.hold[:0], w.hold[len(w.hold)-maxHold:]...)
		}
		i := resyncAt(w.hold, d == stream.C2S, len(w.hold) >= maxHold)
		if i < 0 {
			return
		}
		w.resync = false
		b = append([]byte(nil), w.hold[i:]...)
		w.hold = w.hold[:0]
	}
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
				// Not a frame: the WebSocket framing is lost; look for the next one.
				s.conn.Gap(d, t, 1)
				w.lose()
				s.wsData(d, t, b)
				return
			}
			w.left = length
			if op == 1 && !h.wsText {
				h.wsText = true
				if n, ok := s.conn.(stream.Noter); ok {
					n.Note(d, t, stream.SourceNote{Rule: "MQTT-6.0.0-1", Text: fmt.Sprintf(
						"the %s sent a WebSocket text frame: MQTT packets must travel in binary frames, and the receiver must close the connection; its bytes are read as MQTT", d.Sender().String())})
				}
			}
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
