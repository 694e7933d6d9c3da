package proxy

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mqscope/mqscope/capture"
)

// Recorder is the Observer behind --record: it writes every connection's MQTT byte streams as
// they were forwarded (decrypted, without WebSocket framing) to a pcapng file, as TCP
// conversations between the device and the broker with the real timestamps. Wireshark and
// tshark decode it (on a port other than 1883, tell them: -d tcp.port==PORT,mqtt).
type Recorder struct {
	mu     sync.Mutex
	f      *os.File
	bw     *bufio.Writer
	sw     *capture.StreamWriter
	listen Endpoint
	logf   func(string, ...any)
	err    error
	closed bool
}

// NewRecorder creates (or truncates) the pcapng file path.
func NewRecorder(path string, listen Endpoint, logf func(string, ...any)) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	sw, err := capture.NewStreamWriter(bw)
	if err != nil {
		f.Close()
		return nil, err
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Recorder{f: f, bw: bw, sw: sw, listen: listen, logf: logf}, nil
}

func addrPort(s string) (netip.AddrPort, bool) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// Open starts recording a connection.
func (r *Recorder) Open(info ConnInfo) ConnObserver {
	client, ok := addrPort(info.Client)
	if !ok {
		client = netip.MustParseAddrPort("127.0.0.1:1")
	}
	server, ok := addrPort(info.Server)
	if !ok {
		server, ok = addrPort(r.listen.Addr)
		if !ok {
			server = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 1883)
		}
	}
	if client.Addr().Is4() != server.Addr().Is4() {
		// The pcapng conversation needs one family: show the device in the broker's.
		if server.Addr().Is4() {
			client = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), client.Port())
		} else {
			client = netip.AddrPortFrom(netip.IPv6Loopback(), client.Port())
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.err != nil {
		return nil
	}
	s, err := r.sw.Open(client, server, info.Opened)
	if err != nil {
		r.fail(err)
		return nil
	}
	return &recConnObs{r: r, s: s}
}

func (r *Recorder) fail(err error) {
	if r.err == nil {
		r.err = err
		r.logf("--record: %v; recording stopped", err)
	}
}

// Flush writes out what is buffered and closes the file.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return r.err
	}
	r.closed = true
	if err := r.sw.Flush(); err != nil {
		r.fail(err)
	}
	if err := r.bw.Flush(); err != nil {
		r.fail(err)
	}
	if err := r.f.Close(); err != nil {
		r.fail(err)
	}
	if r.err != nil {
		return fmt.Errorf("--record: %w", r.err)
	}
	return nil
}

type recConnObs struct {
	r *Recorder
	s *capture.TCPStream
}

func capDir(d Dir) capture.Dir {
	if d == S2C {
		return capture.ServerToClient
	}
	return capture.ClientToServer
}

func (o *recConnObs) Data(d Dir, t time.Time, b []byte) {
	o.r.mu.Lock()
	defer o.r.mu.Unlock()
	if o.r.closed || o.r.err != nil {
		return
	}
	if err := o.s.Write(capDir(d), t, b); err != nil {
		o.r.fail(err)
	}
}

func (o *recConnObs) Close(t time.Time, by, reason string) {
	o.r.mu.Lock()
	defer o.r.mu.Unlock()
	if o.r.closed || o.r.err != nil {
		return
	}
	d := capture.ServerToClient
	if strings.HasPrefix(by, "client") {
		d = capture.ClientToServer
	}
	var err error
	if strings.Contains(reason, "reset") && !strings.Contains(reason, "half-close") {
		err = o.s.Reset(d, t)
	} else {
		err = o.s.Close(d, t)
	}
	if err != nil {
		o.r.fail(err)
	}
}
