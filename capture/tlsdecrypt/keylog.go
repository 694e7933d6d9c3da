package tlsdecrypt

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
)

// The key log labels (the NSS key log format that SSLKEYLOGFILE names, as written by Go's
// tls.Config.KeyLogWriter, OpenSSL, NSS, mbedTLS and Python's ssl).
const (
	labelMaster          = "CLIENT_RANDOM" // TLS 1.2 and earlier: the 48-byte master secret
	labelClientHandshake = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
	labelServerHandshake = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
	labelClientTraffic   = "CLIENT_TRAFFIC_SECRET_0"
	labelServerTraffic   = "SERVER_TRAFFIC_SECRET_0"
)

// labels are the secrets a key log may hold, in the order they are written back.
var labels = [...]string{labelMaster, labelClientHandshake, labelServerHandshake, labelClientTraffic, labelServerTraffic}

// Random is a ClientHello's random, the name of its connection's secrets in a key log.
type Random [32]byte

// String returns the random in hex, as a key log writes it.
func (r Random) String() string { return hex.EncodeToString(r[:]) }

// secrets are one connection's secrets, indexed like labels.
type secrets [len(labels)][]byte

// Keys holds TLS secrets by client random. It is safe for concurrent use: a live capture
// adds the lines of a growing key log while its connections look secrets up.
type Keys struct {
	mu sync.RWMutex
	m  map[Random]*secrets
	// resumed maps the session IDs and tickets that TLS 1.2 connections were given to their
	// client randoms: a session resumed with one uses that connection's master secret
	// (writers log none for the resumed connection).
	resumed map[string]Random
	// refresh, when set, is called when a lookup finds nothing: it may add secrets (a key
	// log that grows while it is read).
	refresh func()
}

// NewKeys returns an empty store.
func NewKeys() *Keys { return &Keys{m: map[Random]*secrets{}} }

// Len returns how many client randoms have secrets.
func (k *Keys) Len() int {
	if k == nil {
		return 0
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.m)
}

// SetRefresh sets a function called when a lookup misses, before it is tried again once:
// it may add the secrets (e.g. read the new lines of a key log that is still being
// written). It is called on the goroutine of the lookup.
func (k *Keys) SetRefresh(f func()) {
	k.mu.Lock()
	k.refresh = f
	k.mu.Unlock()
}

// Merge adds every secret of o to k.
func (k *Keys) Merge(o *Keys) {
	if o == nil || o == k {
		return
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	k.mu.Lock()
	defer k.mu.Unlock()
	for r, s := range o.m {
		for i, v := range s {
			if v != nil {
				k.set(r, i, v)
			}
		}
	}
}

func (k *Keys) set(r Random, i int, v []byte) {
	s := k.m[r]
	if s == nil {
		s = &secrets{}
		k.m[r] = s
	}
	s[i] = v
}

// lookup returns the secret of label index i for client random r, or nil.
func (k *Keys) lookup(r Random, i int) []byte {
	if k == nil {
		return nil
	}
	k.mu.RLock()
	var v []byte
	if s := k.m[r]; s != nil {
		v = s[i]
	}
	refresh := k.refresh
	k.mu.RUnlock()
	if v == nil && refresh != nil {
		refresh()
		k.mu.RLock()
		if s := k.m[r]; s != nil {
			v = s[i]
		}
		k.mu.RUnlock()
	}
	return v
}

// maxResumed bounds the session IDs and tickets remembered.
const maxResumed = 1 << 16

// remember notes that the TLS 1.2 session named by key (a session ID or a ticket) was made by
// the connection with client random r.
func (k *Keys) remember(key string, r Random) {
	if k == nil || key == "" {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.resumed == nil {
		k.resumed = map[string]Random{}
	}
	if len(k.resumed) < maxResumed {
		k.resumed[key] = r
	}
}

// origin returns the client random of the connection that made the session named by key.
func (k *Keys) origin(key string) (Random, bool) {
	if k == nil || key == "" {
		return Random{}, false
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	r, ok := k.resumed[key]
	return r, ok
}

// Has reports whether k holds any secret for client random r.
func (k *Keys) Has(r Random) bool {
	if k == nil {
		return false
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.m[r] != nil
}

// AppendKeyLog appends the key log lines of the given client randoms (those k has secrets
// for), for embedding in a capture file.
func (k *Keys) AppendKeyLog(b []byte, randoms []Random) []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	seen := map[Random]bool{}
	for _, r := range randoms {
		s := k.m[r]
		if s == nil || seen[r] {
			continue
		}
		seen[r] = true
		for i, v := range s {
			if v != nil {
				b = fmt.Appendf(b, "%s %x %x\n", labels[i], r[:], v)
			}
		}
	}
	return b
}

// ReadStats counts the lines of a key log.
type ReadStats struct {
	Secrets int // lines whose secrets were added
	Ignored int // lines of other labels, whose secrets this package does not use (0-RTT, exporter, RSA)
}

// maxLine bounds a key log line (the longest valid one is about 230 bytes).
const maxLine = 4096

// Read adds the secrets of a key log read from r; name says where it comes from, for errors.
// Empty lines and comments (#) are skipped. A malformed line is an error that names its
// line number; the lines before it are kept.
func (k *Keys) Read(r io.Reader, name string) (ReadStats, error) {
	var st ReadStats
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxLine)
	line := 0
	for sc.Scan() {
		line++
		added, err := k.addLine(sc.Bytes())
		if err != nil {
			return st, fmt.Errorf("%s: line %d: %w", name, line, err)
		}
		switch added {
		case lineSecret:
			st.Secrets++
		case lineIgnored:
			st.Ignored++
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("%s: after line %d: %w", name, line, err)
	}
	return st, nil
}

// lineKind says what addLine made of a line.
type lineKind uint8

const (
	lineBlank   lineKind = iota // empty or a comment
	lineSecret                  // a secret was added
	lineIgnored                 // a well-formed line of a secret not used here
)

// addLine adds the secret of one key log line ("LABEL <client random hex> <secret hex>").
func (k *Keys) addLine(l []byte) (lineKind, error) {
	l = bytes.TrimSpace(l)
	if len(l) == 0 || l[0] == '#' {
		return lineBlank, nil
	}
	f := bytes.Fields(l)
	if len(f) != 3 {
		return 0, fmt.Errorf("want LABEL CLIENT_RANDOM SECRET, got %d fields", len(f))
	}
	label := string(f[0])
	i := slices.Index(labels[:], label)
	if i < 0 {
		// Secrets not used here (0-RTT, exporters, RSA) and labels of other writers (OpenSSL
		// 3.0 logs CLIENT_TRAFFIC_SECRET_N after a key update, which is derived here
		// anyway) are skipped, as Wireshark does.
		return lineIgnored, nil
	}
	var r Random
	if n, err := hex.Decode(r[:], f[1]); err != nil || n != len(r) || len(f[1]) != 2*len(r) {
		return 0, fmt.Errorf("%s: the client random is not 32 bytes of hex: %q", label, truncate(string(f[1])))
	}
	secret := make([]byte, hex.DecodedLen(len(f[2])))
	if _, err := hex.Decode(secret, f[2]); err != nil {
		return 0, fmt.Errorf("%s: the secret is not hex: %w", label, err)
	}
	switch {
	case i == 0 && len(secret) != 48:
		return 0, fmt.Errorf("%s: the master secret has %d bytes, want 48", label, len(secret))
	case i > 0 && len(secret) != 32 && len(secret) != 48:
		return 0, fmt.Errorf("%s: the secret has %d bytes, want 32 or 48", label, len(secret))
	}
	k.mu.Lock()
	k.set(r, i, secret)
	k.mu.Unlock()
	return lineSecret, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// LogFile is a key log file read as it grows: Update adds the lines written since the last
// call. A program appends a connection's secrets while the connection runs, so a live
// capture reads them again when it meets a connection it has no secrets for.
type LogFile struct {
	mu      sync.Mutex
	name    string
	off     int64  // bytes read and used
	partial []byte // a last line without its newline yet
	line    int    // lines read
}

// NewLogFile returns a LogFile for the named file; nothing is read yet.
func NewLogFile(name string) *LogFile { return &LogFile{name: name} }

// Name returns the file's name.
func (f *LogFile) Name() string { return f.name }

// Update adds to k the secrets of the lines written to the file since the last call. A
// last line without a newline waits for the next call. A file that became shorter (written
// anew) is read again from its start.
func (f *LogFile) Update(k *Keys) (ReadStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var st ReadStats
	file, err := os.Open(f.name)
	if err != nil {
		return st, err
	}
	defer file.Close()
	if fi, err := file.Stat(); err == nil && fi.Size() < f.off {
		f.off, f.partial, f.line = 0, nil, 0
	}
	if _, err := file.Seek(f.off, io.SeekStart); err != nil {
		return st, fmt.Errorf("%s: %w", f.name, err)
	}
	data, err := io.ReadAll(io.LimitReader(file, 64<<20))
	if err != nil {
		return st, fmt.Errorf("%s: %w", f.name, err)
	}
	f.off += int64(len(data))
	data = append(f.partial, data...)
	f.partial = nil
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(data) > maxLine {
				return st, fmt.Errorf("%s: line %d: longer than %d bytes", f.name, f.line+1, maxLine)
			}
			f.partial = append([]byte(nil), data...)
			break
		}
		f.line++
		kind, err := k.addLine(data[:i])
		if err != nil {
			return st, fmt.Errorf("%s: line %d: %w", f.name, f.line, err)
		}
		switch kind {
		case lineSecret:
			st.Secrets++
		case lineIgnored:
			st.Ignored++
		}
		data = data[i+1:]
	}
	return st, nil
}
