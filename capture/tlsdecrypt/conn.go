package tlsdecrypt

import (
	"bytes"
	"encoding/binary"
	"sync"
)

// Dir is a direction of a connection.
type Dir uint8

// Directions.
const (
	ClientToServer Dir = iota
	ServerToClient
)

// Output receives what a Conn decrypts, in order within each direction.
type Output interface {
	// Plaintext delivers the next application data of direction d. b is only valid during
	// the call.
	Plaintext(d Dir, b []byte)
	// Lost reports that n bytes of protected records of direction d, as captured (headers
	// and protection included), could not be decrypted: whatever application data they
	// carried is missing before the next Plaintext. Losses in the unprotected start of the
	// handshake carry no application data and are not reported.
	Lost(d Dir, n int)
}

// Status is what a Conn knows of its connection.
type Status struct {
	Version    uint16   // the negotiated version (0 until the ServerHello is seen)
	Suite      uint16   // the negotiated cipher suite
	ServerName string   // the server name of the ClientHello
	ALPN       []string // the application protocols the ClientHello offered
	Protocol   string   // the protocol the server selected ("" when none, or not seen)
	Random     Random   // the client random, which names the keys in a key log
	Hello      bool     // the ClientHello was seen (Random, ServerName and ALPN are known)
	Records    int64    // records decrypted
	Plaintext  int64    // bytes of application data delivered
	// Err says why the connection, or one direction of it, cannot be decrypted: an *Error
	// wrapping one of the Err values. Only the first reason is kept.
	Err error
}

// epoch says which keys protect a direction's records.
type epoch uint8

const (
	epochPlain     epoch = iota // not protected (yet)
	epochHandshake              // TLS 1.3 handshake traffic keys
	epochApp                    // application traffic keys (TLS 1.2: after ChangeCipherSpec)
)

// Bounds on what a Conn holds.
const (
	// maxHeld bounds the records held per direction while what is needed to read them is
	// missing (the other side's hello, or a key not yet in a growing key log).
	maxHeld = 256 << 10
	// maxTries bounds the sequence numbers tried for a record after bytes were lost.
	maxTries = 4096
	// maxTrial bounds the TLS 1.3 handshake records skipped when the key log has only the
	// application traffic secrets.
	maxTrial = 32
)

// halfConn is one direction.
type halfConn struct {
	buf     []byte // an incomplete record, or the bytes searched for a record after a loss
	skip    int    // bytes still to drop of a record whose middle was lost
	resync  bool   // the record boundary was lost: search for a record that decrypts
	scanned int    // resync: the offset in buf searched up to
	unknown int    // resync: bytes of unknown records lost before buf
	lost    int    // protected bytes not decrypted, not reported yet
	lossy   bool   // bytes were lost since the last record that decrypted

	epoch   epoch
	rc      recordCipher
	trial   recordCipher // TLS 1.3 without handshake secrets: the application cipher to try
	tried   int          // handshake records skipped in that case
	seq     uint64
	secret  []byte // TLS 1.3: the application traffic secret, for key updates
	records int64  // records of this direction seen
	good    int64  // records decrypted under rc
	hs      handshakeBuf
	dead    bool   // nothing more of this direction can be decrypted
	deadWhy *Error // why

	held      [][]byte // records waiting (see maxHeld)
	heldBytes int

	finished  bool // TLS 1.3: the last record ended the handshake (Finished)
	keyUpdate bool // TLS 1.3: the last record had a KeyUpdate
}

// Conn decrypts one TLS connection from the bytes of both directions, each fed in order.
// It is not safe for concurrent use.
type Conn struct {
	keys    *Keys
	out     Output
	h       [2]halfConn
	st      Status
	haveSH  bool
	sh      serverHello
	suite   suite
	c12     [2]recordCipher // TLS 1.2: both directions' ciphers, once derived
	ch      clientHello
	scratch []byte // for plaintext, while a record is decrypted (borrow)
}

// NewConn returns a Conn that finds its secrets in keys and writes to out.
func NewConn(keys *Keys, out Output) *Conn {
	return &Conn{keys: keys, out: out}
}

// Status returns what is known of the connection so far.
func (c *Conn) Status() Status { return c.st }

func (c *Conn) tls13() bool { return c.haveSH && c.sh.version == 0x0304 }

// fail records why something cannot be decrypted (the first reason only) and stops the
// directions given.
func (c *Conn) fail(e *Error, dirs ...Dir) {
	if c.st.Err == nil {
		c.st.Err = e
	}
	for _, d := range dirs {
		h := &c.h[d]
		h.dead, h.deadWhy = true, e
		for _, r := range h.held {
			h.lose(len(r))
		}
		h.held, h.heldBytes = nil, 0
		h.lose(len(h.buf))
		h.buf, h.resync = nil, false
	}
}

// lose counts bytes not decrypted, when they may have carried application data.
func (h *halfConn) lose(n int) {
	if h.epoch != epochPlain {
		h.lost += n
	}
}

func recordLen(hdr []byte) int { return int(binary.BigEndian.Uint16(hdr[3:])) }

// validHeader says whether b starts with a plausible record header.
func validHeader(b []byte) bool {
	return b[0] >= typeChangeCipherSpec && b[0] <= 24 && b[1] == 3 && b[2] <= 4 && recordLen(b) <= maxBody
}

// Data takes the next bytes of direction d.
func (c *Conn) Data(d Dir, b []byte) {
	c.retryHeld()
	h := &c.h[d]
	for len(b) > 0 {
		switch {
		case h.dead:
			h.lose(len(b))
			return
		case h.skip > 0:
			k := min(h.skip, len(b))
			h.skip -= k
			h.lose(k)
			b = b[k:]
		case h.resync:
			b = c.resync(d, b)
		case len(h.buf) == 0 && len(b) >= headerLen:
			if !c.checkHeader(d, b) {
				continue
			}
			if n := headerLen + recordLen(b); n <= len(b) {
				c.record(d, b[:n])
				b = b[n:]
				continue
			}
			h.buf = append(h.buf, b...)
			b = nil
		default:
			if len(h.buf) < headerLen {
				k := min(headerLen-len(h.buf), len(b))
				h.buf = append(h.buf, b[:k]...)
				b = b[k:]
				if len(h.buf) < headerLen || !c.checkHeader(d, h.buf) {
					continue
				}
			}
			n := headerLen + recordLen(h.buf)
			k := min(n-len(h.buf), len(b))
			h.buf = append(h.buf, b[:k]...)
			b = b[k:]
			if len(h.buf) == n {
				c.record(d, h.buf)
				h.buf = h.buf[:0]
			}
		}
	}
}

// checkHeader stops direction d when its next bytes are not a record header.
func (c *Conn) checkHeader(d Dir, b []byte) bool {
	if validHeader(b) {
		return true
	}
	if !c.st.Hello {
		c.fail(&Error{Err: ErrMidStream, Dir: d}, ClientToServer, ServerToClient)
	} else {
		c.fail(&Error{Err: ErrNotTLS, Dir: d}, d)
	}
	return false
}

// Gap reports that n bytes of direction d were not captured.
func (c *Conn) Gap(d Dir, n int) {
	if n <= 0 {
		return
	}
	h := &c.h[d]
	h.lossy = true
	switch {
	case h.dead:
		h.lose(n)
		return
	case d == ClientToServer && !c.st.Hello:
		c.fail(&Error{Err: ErrNoClientHello, Dir: d, Lost: n + len(h.buf)}, ClientToServer, ServerToClient)
		return
	case d == ServerToClient && !c.haveSH && len(h.held) == 0:
		c.fail(&Error{Err: ErrNoServerHello, Dir: d, Lost: n + len(h.buf)}, ClientToServer, ServerToClient)
		return
	case h.skip > 0:
		k := min(h.skip, n)
		h.skip -= k
		h.lose(k)
		if n -= k; n == 0 {
			return
		}
	case h.resync:
		// Still searching: the loss is inside the region searched.
		h.lose(len(h.buf) + n)
		h.unknown += len(h.buf) + n
		h.buf, h.scanned = h.buf[:0], 0
		return
	case len(h.buf) >= headerLen:
		// The rest of a record whose header came: the boundary after it is known.
		rest := headerLen + recordLen(h.buf) - len(h.buf)
		h.lose(len(h.buf) + min(n, rest))
		c.skipRecord(d, h.buf[0])
		h.buf = h.buf[:0]
		if n < rest {
			h.skip = rest - n
			return
		}
		if n -= rest; n == 0 {
			return
		}
	}
	// The next record header was lost: search for a record that decrypts.
	h.lose(len(h.buf) + n)
	h.resync, h.unknown, h.scanned = true, len(h.buf)+n, 0
	h.buf = h.buf[:0]
}

// skipRecord accounts for a record of direction d lost whole or in part.
func (c *Conn) skipRecord(d Dir, typ byte) {
	h := &c.h[d]
	h.records++
	if c.protected(d, typ) {
		h.seq++
	}
}

// protected says whether a record of type typ of direction d is protected now.
func (c *Conn) protected(d Dir, typ byte) bool {
	e := c.h[d].epoch
	if c.tls13() {
		// Only application_data records are protected; a ChangeCipherSpec (middlebox
		// compatibility) and an alert before the keys are not.
		return e != epochPlain && typ == typeApplicationData
	}
	return e == epochApp
}

// Dead says whether nothing more of direction d can be decrypted.
func (c *Conn) Dead(d Dir) bool { return c.h[d].dead }

// Close ends the connection: held records are given up and losses reported.
func (c *Conn) Close() {
	c.retryHeld()
	for d := range c.h {
		h := &c.h[d]
		if len(h.held) > 0 {
			c.fail(c.whyHeld(Dir(d)), Dir(d))
		}
		if h.resync && !h.dead {
			c.fail(&Error{Err: ErrLost, Dir: Dir(d), Lost: h.unknown}, Dir(d))
		}
		// Bytes are reported lost when the capture lost them; not those a direction could not
		// decrypt after it failed otherwise (a wrong key, bytes that are not TLS): those
		// were not lost, and Status.Err says why they are missing.
		if h.lost > 0 && (!h.dead || h.deadWhy.Err == ErrLost) {
			c.out.Lost(Dir(d), h.lost)
		}
		h.lost = 0
	}
}

// whyHeld says why records of direction d are still held.
func (c *Conn) whyHeld(d Dir) *Error {
	switch {
	case !c.st.Hello:
		return &Error{Err: ErrNoClientHello, Dir: d}
	case !c.haveSH:
		return &Error{Err: ErrNoServerHello, Dir: d}
	}
	return c.noKey(d)
}

// waits says whether a record of direction d must wait (be held) before it can be read.
func (c *Conn) waits(d Dir, typ byte) bool {
	h := &c.h[d]
	switch {
	case len(h.held) > 0:
		return true // behind others
	case d == ServerToClient && !c.st.Hello:
		return true // the server's bytes came first (reassembly's order): wait for the client's
	case d == ClientToServer && c.st.Hello && !c.haveSH:
		return true // the client's records after its hello need the server's
	case c.protected(d, typ) && !c.ready(d):
		return c.keys != nil && c.keys.refresh != nil // a key log still growing may have it soon
	}
	return false
}

// record handles one whole record of direction d (header and body).
func (c *Conn) record(d Dir, rec []byte) {
	h := &c.h[d]
	if c.waits(d, rec[0]) {
		if h.heldBytes+len(rec) > maxHeld {
			c.fail(c.whyHeld(d), d)
			h.lose(len(rec))
			return
		}
		h.held = append(h.held, append([]byte(nil), rec...))
		h.heldBytes += len(rec)
		return
	}
	c.process(d, rec)
}

// retryHeld processes the records held when what they waited for has come.
func (c *Conn) retryHeld() {
	for d := range c.h {
		h := &c.h[d]
		if len(h.held) == 0 {
			continue
		}
		held := h.held
		h.held, h.heldBytes = nil, 0
		for i, rec := range held {
			if h.dead {
				h.lose(len(rec))
				continue
			}
			if c.waits(Dir(d), rec[0]) {
				h.held = append(h.held, held[i:]...)
				for _, r := range h.held {
					h.heldBytes += len(r)
				}
				break
			}
			c.process(Dir(d), rec)
		}
	}
}

// process reads one record of direction d.
func (c *Conn) process(d Dir, rec []byte) {
	h := &c.h[d]
	typ := rec[0]
	if !c.protected(d, typ) {
		h.records++
		switch {
		case !c.st.Hello && (d == ServerToClient || typ != typeHandshake):
			c.fail(&Error{Err: ErrMidStream, Dir: d}, ClientToServer, ServerToClient)
		case typ == typeHandshake:
			c.handshake(d, rec[headerLen:])
		case typ == typeChangeCipherSpec && c.haveSH && !c.tls13():
			h.epoch, h.seq, h.rc = epochApp, 0, nil // TLS 1.2: what follows is protected
		case typ == typeApplicationData && c.haveSH && !c.tls13():
			// Application data before the ChangeCipherSpec: that record was lost.
			h.epoch, h.seq, h.rc, h.lossy = epochApp, 1, nil, true
			h.records--
			c.process(d, rec)
		}
		c.retryHeld()
		return
	}
	if !c.ready(d) {
		c.fail(c.noKey(d), ClientToServer, ServerToClient)
		return
	}
	c.decrypt(d, rec)
}

// ready says whether direction d has the keys of its epoch, looking them up if needed.
func (c *Conn) ready(d Dir) bool {
	h := &c.h[d]
	if h.rc != nil || h.trial != nil {
		return true
	}
	s := c.suite
	if s.prf == nil {
		return false // no supported suite was negotiated (the failure says why)
	}
	hsLabel, appLabel := labelClientHandshake, labelClientTraffic
	if d == ServerToClient {
		hsLabel, appLabel = labelServerHandshake, labelServerTraffic
	}
	var err error
	switch {
	case c.tls13() && h.epoch == epochHandshake:
		if secret := c.keys.lookup(c.st.Random, slot(hsLabel)); secret != nil {
			h.rc, err = cipher13(s, secret)
		} else if secret := c.keys.lookup(c.st.Random, slot(appLabel)); secret != nil {
			h.trial, err = cipher13(s, secret)
			h.secret = secret
		}
	case c.tls13():
		if h.secret == nil {
			h.secret = c.keys.lookup(c.st.Random, slot(appLabel))
		}
		if h.secret != nil {
			h.rc, err = cipher13(s, h.secret)
		}
	default:
		if c.c12[d] == nil {
			if master := c.master(); master != nil {
				c.c12[0], c.c12[1], err = ciphers12(s, master, c.st.Random, c.sh.random, c.sh.etm)
			}
		}
		h.rc = c.c12[d]
	}
	if err != nil {
		// The suite's key sizes are fixed by the table; a secret of another size fails here.
		c.fail(&Error{Err: ErrWrongKey, Dir: d}, d)
		return false
	}
	return h.rc != nil || h.trial != nil
}

func slot(label string) int {
	for i, l := range labels {
		if l == label {
			return i
		}
	}
	panic("tlsdecrypt: unknown label " + label)
}

// master returns the TLS 1.2 master secret: logged for the client random, or, for a session
// resumed by ticket or session ID, logged for the connection that made the session.
func (c *Conn) master() []byte {
	if m := c.keys.lookup(c.st.Random, slot(labelMaster)); m != nil {
		return m
	}
	var key string
	switch {
	case len(c.ch.ticket) > 0:
		key = "ticket:" + string(c.ch.ticket)
	case len(c.sh.sessionID) > 0 && bytes.Equal(c.sh.sessionID, c.ch.sessionID):
		key = "id:" + string(c.sh.sessionID)
	}
	if r, ok := c.keys.origin(key); ok {
		return c.keys.lookup(r, slot(labelMaster))
	}
	return nil
}

// noKey says which secret direction d lacks.
func (c *Conn) noKey(d Dir) *Error {
	e := &Error{Err: ErrNoKey, Dir: d, Random: c.st.Random}
	if c.keys.Has(c.st.Random) {
		switch {
		case !c.tls13():
			e.Label = labelMaster
		case d == ClientToServer:
			e.Label = labelClientTraffic
		default:
			e.Label = labelServerTraffic
		}
	}
	return e
}

// decrypt opens a protected record of direction d.
func (c *Conn) decrypt(d Dir, rec []byte) {
	h := &c.h[d]
	h.records++
	defer c.giveBack(c.borrow())
	hdr, body := rec[:headerLen], rec[headerLen:]
	if h.trial != nil {
		// TLS 1.3 handshake records are skipped until one opens with the application key.
		if typ, p, err := h.trial.open(c.scratch, 0, hdr, body); err == nil {
			h.epoch, h.rc, h.trial, h.seq = epochApp, h.trial, nil, 1
			c.opened(d, typ, p)
			return
		}
		if h.tried++; h.tried > maxTrial {
			c.fail(&Error{Err: ErrWrongKey, Dir: d, Record: h.records}, d)
		}
		return
	}
	typ, p, err := h.rc.open(c.scratch, h.seq, hdr, body)
	if err == nil {
		h.seq++
		c.opened(d, typ, p)
		return
	}
	if h.lossy && c.findSeq(d, rec, 0, maxTries) {
		return
	}
	h.lose(len(rec))
	switch {
	case h.lossy:
		c.fail(&Error{Err: ErrLost, Dir: d, Record: h.records, Lost: h.lost}, d)
	case h.good == 0:
		c.fail(&Error{Err: ErrWrongKey, Dir: d, Record: h.records}, d)
	default:
		// Damaged in the capture: skip it, the next one may open.
		c.fail(&Error{Err: ErrDamaged, Dir: d, Record: h.records, Good: h.good})
		h.seq++
		h.lossy = true
	}
}

// scratchPool holds the plaintext buffers of the records being decrypted: one per goroutine
// at work, not one per connection.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, maxBody+256); return &b }}

// borrow takes a plaintext buffer for the record being decrypted, unless one is held
// already; giveBack returns what borrow took, once the plaintext has been delivered.
func (c *Conn) borrow() *[]byte {
	if c.scratch != nil {
		return nil
	}
	p := scratchPool.Get().(*[]byte)
	c.scratch = *p
	return p
}

func (c *Conn) giveBack(p *[]byte) {
	if p != nil {
		c.scratch = nil
		scratchPool.Put(p)
	}
}

// findSeq tries the sequence numbers after direction d's next one (from lo to hi records
// further), and in TLS 1.3's handshake epoch the first ones of the application keys, on a
// record that follows lost bytes; it reads the record and returns true when one opens it.
func (c *Conn) findSeq(d Dir, rec []byte, lo, hi int) bool {
	h := &c.h[d]
	hdr, body := rec[:headerLen], rec[headerLen:]
	hi = min(hi, lo+maxTries)
	try := func(rc recordCipher, seq uint64) bool {
		typ, p, err := rc.open(c.scratch, seq, hdr, body)
		if err != nil {
			return false
		}
		h.rc, h.seq = rc, seq+1
		c.opened(d, typ, p)
		return true
	}
	if rc := h.rc; rc != nil {
		if s, ok := rc.seqHint(body); ok && s >= h.seq && try(rc, s) {
			return true
		}
		for i := lo; i <= hi; i++ {
			if try(rc, h.seq+uint64(i)) {
				return true
			}
		}
	}
	if c.tls13() && h.epoch == epochHandshake {
		// The Finished may have been lost with the bytes.
		rc := h.rc
		h.epoch, h.rc = epochApp, nil
		if c.ready(d) {
			for i := range hi + 1 {
				if try(h.rc, uint64(i)) {
					return true
				}
			}
		}
		h.epoch, h.rc = epochHandshake, rc
	}
	return false
}

// opened handles the plaintext of a record of direction d that decrypted.
func (c *Conn) opened(d Dir, typ byte, p []byte) {
	h := &c.h[d]
	h.good++
	h.lossy = false
	c.st.Records++
	switch typ {
	case typeApplicationData:
		if h.epoch == epochApp && len(p) > 0 {
			if h.lost > 0 {
				c.out.Lost(d, h.lost)
				h.lost = 0
			}
			c.st.Plaintext += int64(len(p))
			c.out.Plaintext(d, p)
		}
	case typeHandshake:
		c.handshake(d, p)
		switch {
		case h.finished && h.epoch == epochHandshake:
			h.epoch, h.rc, h.seq, h.good = epochApp, nil, 0, 0
		case h.keyUpdate && h.epoch == epochApp && c.tls13() && h.secret != nil:
			next, err := nextSecret(c.suite, h.secret)
			if err == nil {
				h.secret = next
				h.rc, err = cipher13(c.suite, next)
			}
			if err != nil {
				c.fail(&Error{Err: ErrWrongKey, Dir: d}, d)
			}
			h.seq, h.good = 0, 0
		}
		h.finished, h.keyUpdate = false, false
	}
}

// handshake takes handshake bytes of direction d.
func (c *Conn) handshake(d Dir, b []byte) {
	c.h[d].hs.add(b, func(typ byte, body []byte) { c.message(d, typ, body) })
}

// message handles one handshake message of direction d.
func (c *Conn) message(d Dir, typ byte, body []byte) {
	h := &c.h[d]
	switch {
	case typ == msgClientHello && d == ClientToServer && !c.st.Hello:
		ch, ok := parseClientHello(body)
		if !ok {
			c.fail(&Error{Err: ErrNotTLS, Dir: d}, ClientToServer, ServerToClient)
			return
		}
		c.ch = ch
		c.st.Hello, c.st.Random, c.st.ServerName, c.st.ALPN = true, ch.random, ch.serverName, ch.alpn
		if ch.earlyData {
			// Its records use keys this package does not derive; the handshake after them is
			// still read.
			c.fail(&Error{Err: ErrEarlyData, Dir: d})
		}
	case typ == msgServerHello && d == ServerToClient && !c.haveSH:
		sh, ok := parseServerHello(body)
		if !ok {
			c.fail(&Error{Err: ErrNotTLS, Dir: d}, ClientToServer, ServerToClient)
			return
		}
		if sh.retry {
			return // a HelloRetryRequest: the ServerHello comes after the second ClientHello
		}
		c.haveSH, c.sh = true, sh
		if sh.version == 0x0303 && len(sh.sessionID) > 0 && !bytes.Equal(sh.sessionID, c.ch.sessionID) {
			c.keys.remember("id:"+string(sh.sessionID), c.st.Random) // a new session
		}
		c.st.Version, c.st.Suite = sh.version, sh.suite
		if sh.alpn != "" {
			c.st.Protocol = sh.alpn
		}
		s, known := suites[sh.suite]
		switch {
		case sh.version != 0x0303 && sh.version != 0x0304:
			c.fail(&Error{Err: ErrUnsupportedVersion, Dir: d, Version: sh.version}, ClientToServer, ServerToClient)
		case !known || s.tls13 != (sh.version == 0x0304):
			c.fail(&Error{Err: ErrUnsupportedSuite, Dir: d, Suite: sh.suite}, ClientToServer, ServerToClient)
		default:
			c.suite = s
			if s.tls13 {
				c.h[0].epoch, c.h[1].epoch = epochHandshake, epochHandshake
			}
		}
	case typ == msgNewSessionTicket && d == ServerToClient && !c.tls13():
		c.keys.remember("ticket:"+string(newSessionTicket(body)), c.st.Random)
	case typ == msgEncryptedExtensions && d == ServerToClient:
		if p := encryptedExtensionsALPN(body); p != "" {
			c.st.Protocol = p
		}
	case typ == msgFinished && h.epoch == epochHandshake:
		h.finished = true
	case typ == msgKeyUpdate && h.epoch == epochApp:
		h.keyUpdate = true
	}
}

// resync searches the bytes of direction d after a loss for a record that decrypts with a
// later sequence number, and returns what follows it once found (nil while searching).
func (c *Conn) resync(d Dir, b []byte) []byte {
	h := &c.h[d]
	h.buf = append(h.buf, b...)
	for p := h.scanned; p+headerLen <= len(h.buf); p++ {
		hdr := h.buf[p:]
		if !c.plausible(d, hdr) {
			continue
		}
		n := headerLen + recordLen(hdr)
		if p+n > len(h.buf) {
			h.scanned = p
			c.trimResync(d)
			return nil
		}
		rec := h.buf[p : p+n]
		if c.found(d, rec, h.unknown+p) {
			h.lose(p)
			h.resync = false
			rest := append([]byte(nil), h.buf[p+n:]...)
			h.buf, h.scanned, h.unknown = h.buf[:0], 0, 0
			return rest
		}
	}
	h.scanned = max(len(h.buf)-headerLen+1, 0)
	c.trimResync(d)
	return nil
}

// trimResync bounds the bytes held while searching.
func (c *Conn) trimResync(d Dir) {
	h := &c.h[d]
	if k := len(h.buf) - 2*(headerLen+maxBody); k > 0 {
		k = min(k, h.scanned)
		h.lose(k)
		h.unknown += k
		h.scanned -= k
		h.buf = append(h.buf[:0], h.buf[k:]...)
	}
}

// plausible says whether b may start a record of direction d after a loss.
func (c *Conn) plausible(d Dir, b []byte) bool {
	if !validHeader(b) || b[2] != 3 {
		return false
	}
	if c.h[d].epoch == epochPlain {
		// TLS 1.2 before the ChangeCipherSpec: only that record is recognised surely.
		return len(b) >= 6 && b[0] == typeChangeCipherSpec && recordLen(b) == 1 && b[5] == 1
	}
	return recordLen(b) >= minSealed && (b[0] == typeApplicationData || !c.tls13())
}

// found tries rec, after lost bytes of unknown records, as the next record of direction d.
func (c *Conn) found(d Dir, rec []byte, lost int) bool {
	h := &c.h[d]
	if h.epoch == epochPlain {
		h.records++
		h.epoch, h.seq, h.rc = epochApp, 0, nil
		return true
	}
	if !c.ready(d) {
		return false
	}
	defer c.giveBack(c.borrow())
	h.records++
	lo := lost / (headerLen + maxBody)
	hi := lost/(headerLen+minSealed) + 1
	if c.findSeq(d, rec, lo, hi) {
		return true
	}
	h.records--
	return false
}
