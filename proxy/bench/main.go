// Command bench runs the same MQTT load directly against a broker and through `mqscope proxy`
// (a separate process, with decoding and inspection on and JSON lines written to /dev/null),
// and prints the throughput ratio, the latency the proxy adds (p50, p99), and the memory the
// proxy holds per idle connection.
//
//	go run ./proxy/bench                      # mosquitto if installed, else the embedded broker
//	go run ./proxy/bench -pubs 10 -msgs 20000 -size 100 -rate 2000 -idle 10000
//	go run ./proxy/bench -broker embedded -load=false -idle 10000
//
// With -broker embedded, the load runs use a mochi-mqtt broker in the bench process (so that the
// direct runs have one), and the idle connections go through a second proxy started with
// `--upstream embedded`: its memory per connection then includes the broker's, as a user's would.
// The same connections are then held by the embedded broker alone in a process of its own, and
// the difference is the proxy's own share.
//
// The load runs also go through a bare relay (relay.go: a process that copies bytes both ways
// and does nothing else): what any proxy in a process of its own costs on this machine.
//
// The clients are minimal MQTT 5 clients written with package decode (one write per packet,
// as real clients do), so the load generator costs little CPU next to the broker and proxy.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
)

var (
	pubs     = flag.Int("pubs", 10, "publishers")
	msgs     = flag.Int("msgs", 20000, "messages per publisher in each throughput run")
	size     = flag.Int("size", 100, "payload bytes")
	window   = flag.Int("window", 16, "QoS 1 messages in flight per publisher")
	rate     = flag.Int("rate", 2000, "messages per second, all publishers together, in the latency runs")
	latMsgs  = flag.Int("latency-msgs", 10000, "messages in each latency run")
	idle     = flag.Int("idle", 10000, "idle connections to hold through the proxy (capped by the open-file limit)")
	rounds   = flag.Int("rounds", 3, "alternate direct and proxied runs this many times; medians are reported")
	brokerF  = flag.String("broker", "auto", "mosquitto, embedded, or auto")
	proxyBin = flag.String("mqscope", "", "mqscope binary (default: built from this module)")
	cpuProf  = flag.String("cpuprofile", "", "write the proxy's CPU profile to `FILE`")
	format   = flag.String("format", "jsonl", "the proxy's output format, written to /dev/null (none: --quiet, inspection without printing)")
	loadF    = flag.Bool("load", true, "run the throughput and latency runs (false: the idle measurement only)")
	relayF   = flag.Bool("relay", true, "also run the load through a bare relay process (io.Copy both ways, no inspection): the floor of any proxy here")
)

func main() {
	if v := os.Getenv(relayEnv); v != "" { // this process is the relay of a bench run
		listen, upstream, _ := strings.Cut(v, " ")
		if err := serveRelay(listen, upstream); err != nil {
			fmt.Fprintln(os.Stderr, "bench relay:", err)
			os.Exit(1)
		}
		return
	}
	if v := os.Getenv(brokerEnv); v != "" { // this process is the broker alone of an idle run
		if err := serveBroker(v); err != nil {
			fmt.Fprintln(os.Stderr, "bench broker:", err)
			os.Exit(1)
		}
		return
	}
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	tmp, err := os.MkdirTemp("", "mqscope-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	brokerAddr, brokerName, stopBroker, err := startBroker(tmp)
	if err != nil {
		return err
	}
	defer stopBroker()
	bin := *proxyBin
	if bin == "" {
		bin = filepath.Join(tmp, "mqscope")
		build := exec.Command("go", "build", "-o", bin, "github.com/mqscope/mqscope/cmd/mqscope")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building mqscope: %w", err)
		}
	}
	proxyAddr, pid, stopProxy, err := startProxy(bin, brokerAddr)
	if err != nil {
		return err
	}
	defer stopProxy()
	fmt.Printf("broker: %s at %s; proxy: %s (pid %d, --format %s > /dev/null); %d CPUs, %s\n",
		brokerName, brokerAddr, proxyAddr, pid, *format, runtime.NumCPU(), runtime.Version())
	fmt.Printf("load: %d publishers, 1 subscriber, %d-byte payloads; throughput runs %d msgs/publisher; latency runs %d msgs at %d msg/s; %d rounds\n\n",
		*pubs, *size, *msgs, *latMsgs, *rate, *rounds)

	targets := []string{brokerAddr, proxyAddr}
	if *relayF && *loadF {
		relayAddr, stopRelay, err := startRelay(brokerAddr)
		if err != nil {
			return err
		}
		defer stopRelay()
		targets = append(targets, relayAddr)
		fmt.Printf("relay: %s (a process copying bytes both ways with io.Copy, nothing else)\n\n", relayAddr)
	}
	for _, qos := range []byte{0, 1} {
		if !*loadF {
			break
		}
		tput := make([][]float64, len(targets))
		p50 := make([][]time.Duration, len(targets))
		p99 := make([][]time.Duration, len(targets))
		for range *rounds {
			for i, target := range targets {
				r, err := load(target, qos, *msgs, 0)
				if err != nil {
					return fmt.Errorf("QoS %d throughput via %s: %w", qos, target, err)
				}
				tput[i] = append(tput[i], r.rate)
				l, err := load(target, qos, *latMsgs / *pubs, *rate)
				if err != nil {
					return fmt.Errorf("QoS %d latency via %s: %w", qos, target, err)
				}
				p50[i] = append(p50[i], l.p50)
				p99[i] = append(p99[i], l.p99)
			}
		}
		d := median(tput[0])
		for i, name := range []string{"proxy", "relay"}[:len(targets)-1] {
			p := median(tput[i+1])
			fmt.Printf("QoS %d  throughput  direct %8.0f msg/s   %s %8.0f msg/s   ratio %.2f\n", qos, d, name, p, p/d)
		}
		for i, name := range []string{"proxy", "relay"}[:len(targets)-1] {
			fmt.Printf("QoS %d  latency     direct p50 %6s p99 %6s   %s p50 %6s p99 %6s   added p50 %s p99 %s\n", qos,
				us(medianD(p50[0])), us(medianD(p99[0])), name, us(medianD(p50[i+1])), us(medianD(p99[i+1])),
				us(medianD(p50[i+1])-medianD(p50[0])), us(medianD(p99[i+1])-medianD(p99[0])))
		}
	}
	if *brokerF != "embedded" || *idle <= 0 {
		_, err := idleRun("proxy", proxyAddr, pid, 2)
		return err
	}
	stopProxy() // its descriptors are the bench's too, until it exits
	addr, pid, stop, err := startProxy(bin, "embedded")
	if err != nil {
		return err
	}
	fmt.Printf("\nidle: proxy with --upstream embedded (the broker in the proxy process): %s (pid %d)\n", addr, pid)
	total, err := idleRun("proxy", addr, pid, 1)
	stop()
	if err != nil {
		return err
	}
	// The same connections to the same broker in a process of its own: what the broker holds.
	baddr, bpid, bstop, err := startBrokerProcess()
	if err != nil {
		return err
	}
	defer bstop()
	fmt.Printf("\nidle: the embedded broker alone, in a process of its own: %s (pid %d)\n", baddr, bpid)
	broker, err := idleRun("broker", baddr, bpid, 1)
	if err != nil {
		return err
	}
	fmt.Printf("\nidle: the proxy's own share: %.1f - %.1f = %.1f KB per connection\n",
		float64(total)/1024, float64(broker)/1024, float64(total-broker)/1024)
	return nil
}

// startProxy starts `mqscope proxy` to upstream (an address or "embedded") on a free port; stop
// ends it (and may be called more than once).
func startProxy(bin, upstream string) (addr string, pid int, stop func(), err error) {
	addr = freeAddr()
	args := []string{"proxy", "--listen", addr, "--upstream", upstream, "--max-frame", "1048576"}
	if *format == "none" {
		args = append(args, "--quiet") // inspection on, records not printed
	} else {
		args = append(args, "--format", *format)
	}
	if *cpuProf != "" {
		args = append(args, "--cpuprofile", *cpuProf)
	}
	pcmd := exec.Command(bin, args...)
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close() // the child has its own copy once started
	pcmd.Stdout, pcmd.Stderr = devnull, os.Stderr
	pid, stop, err = startProcess(pcmd, addr, "proxy")
	return addr, pid, stop, err
}

func us(d time.Duration) string { return fmt.Sprintf("%dµs", d.Microseconds()) }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianD(v []time.Duration) time.Duration {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitListening(addr string) bool {
	for range 500 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func startBroker(tmp string) (addr, name string, stop func(), err error) {
	if *brokerF != "embedded" {
		bin, lerr := exec.LookPath("mosquitto")
		if lerr != nil {
			if _, serr := os.Stat("/usr/sbin/mosquitto"); serr == nil {
				bin, lerr = "/usr/sbin/mosquitto", nil
			}
		}
		if lerr == nil {
			addr = freeAddr()
			_, port, _ := net.SplitHostPort(addr)
			conf := filepath.Join(tmp, "mosquitto.conf")
			c := "persistence false\nmax_queued_messages 1000000\nmax_inflight_messages 0\n"
			if os.Geteuid() == 0 {
				c += "user root\n"
			}
			c += "listener " + port + " 127.0.0.1\nallow_anonymous true\n"
			os.WriteFile(conf, []byte(c), 0o600)
			cmd := exec.Command(bin, "-c", conf)
			if err := cmd.Start(); err != nil {
				return "", "", nil, err
			}
			if !waitListening(addr) {
				cmd.Process.Kill()
				return "", "", nil, errors.New("mosquitto did not start")
			}
			return addr, "mosquitto", func() { cmd.Process.Kill(); cmd.Wait() }, nil
		}
		if *brokerF == "mosquitto" {
			return "", "", nil, lerr
		}
	}
	b, err := proxy.StartEmbedded("127.0.0.1:0", nil)
	if err != nil {
		return "", "", nil, err
	}
	return b.Addr(), "embedded (mochi-mqtt, in the bench process)", func() { b.Close() }, nil
}

// client is a minimal MQTT 5 client.
type client struct {
	c  net.Conn
	br *bufio.Reader
	wm sync.Mutex
}

var clientSeq atomic.Int64

func dial(addr string) (*client, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	cl := &client{c: c, br: bufio.NewReaderSize(c, 64<<10)}
	id := "bench-" + strconv.FormatInt(clientSeq.Add(1), 10)
	// A keep-alive as devices set (every run is shorter than the 90 s the broker waits).
	b, _ := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 60, ClientID: id})
	if _, err := c.Write(b); err != nil {
		c.Close()
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	typ, body, err := cl.read(nil)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("CONNACK: %w", err)
	}
	if typ != decode.CONNACK || len(body) < 2 || body[1] != 0 {
		c.Close()
		return nil, fmt.Errorf("CONNACK refused: %v % x", typ, body)
	}
	return cl, nil
}

// read returns the next packet's type and body (in buf's storage).
func (cl *client) read(buf []byte) (decode.Type, []byte, error) {
	h, err := cl.br.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	rl, mul := 0, 1
	for i := 0; ; i++ {
		b, err := cl.br.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		rl += int(b&0x7f) * mul
		mul <<= 7
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("bad remaining length")
		}
	}
	if cap(buf) < rl {
		buf = make([]byte, rl)
	}
	buf = buf[:rl]
	_, err = io.ReadFull(cl.br, buf)
	return decode.Type(h >> 4), buf, err
}

func (cl *client) write(b []byte) error {
	cl.wm.Lock()
	defer cl.wm.Unlock()
	_, err := cl.c.Write(b)
	return err
}

type result struct {
	rate     float64
	p50, p99 time.Duration
}

// load runs one publish/subscribe load through addr: n messages per publisher at QoS qos, as
// fast as possible (perSec 0) or at perSec messages per second in total.
func load(addr string, qos byte, n, perSec int) (result, error) {
	topic := fmt.Sprintf("bench/%d/%d", qos, clientSeq.Load())
	sub, err := dial(addr)
	if err != nil {
		return result{}, err
	}
	defer sub.c.Close()
	sb, _ := decode.Encode(nil, &decode.Subscribe{Base: decode.Base{Version: decode.V5}, PacketID: 1,
		Subscriptions: []decode.Subscription{{Filter: topic + "/#", QoS: qos}}})
	sub.write(sb)
	if typ, _, err := sub.read(nil); err != nil || typ != decode.SUBACK {
		return result{}, fmt.Errorf("SUBACK: %v %v", typ, err)
	}
	total := n * *pubs
	lat := make([]time.Duration, 0, total)
	got := make(chan struct{})
	var pubsDone atomic.Bool
	var last time.Time
	go func() {
		defer close(got)
		buf := make([]byte, 0, 1024)
		ack := []byte{0x40, 2, 0, 0}
		for len(lat) < total {
			wait := 10 * time.Second
			if qos == 0 && pubsDone.Load() {
				wait = 500 * time.Millisecond // QoS 0 may be dropped by the broker: stop when quiet
			}
			sub.c.SetReadDeadline(time.Now().Add(wait))
			typ, body, err := sub.read(buf)
			if err != nil {
				return
			}
			if typ != decode.PUBLISH {
				continue
			}
			now := time.Now()
			tl := int(binary.BigEndian.Uint16(body))
			p := body[2+tl:]
			if qos > 0 {
				ack[2], ack[3] = p[0], p[1]
				p = p[2:]
				if sub.br.Buffered() == 0 {
					sub.write(ack)
				} else {
					sub.write(ack) // one ack per message, as clients do
				}
			}
			// Skip the properties.
			pl, k, _ := decode.ReadVarInt(p)
			p = p[k+int(pl):]
			sent := int64(binary.BigEndian.Uint64(p))
			lat = append(lat, now.Sub(time.Unix(0, sent)))
			last = now
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, *pubs)
	for range *pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := publish(addr, topic+"/x", qos, n, perSec / *pubs); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	pubsDone.Store(true)
	<-got
	select {
	case err := <-errs:
		return result{}, err
	default:
	}
	if len(lat) == 0 || qos > 0 && len(lat) < total {
		return result{}, fmt.Errorf("received %d of %d messages", len(lat), total)
	}
	if len(lat) < total {
		fmt.Printf("  (QoS 0 via %s: the broker dropped %d of %d messages)\n", addr, total-len(lat), total)
	}
	slices.Sort(lat)
	return result{
		rate: float64(len(lat)) / last.Sub(start).Seconds(),
		p50:  lat[len(lat)/2],
		p99:  lat[len(lat)*99/100],
	}, nil
}

func publish(addr, topic string, qos byte, n, perSec int) error {
	cl, err := dial(addr)
	if err != nil {
		return err
	}
	defer cl.c.Close()
	payload := make([]byte, *size)
	for i := range payload[8:] {
		payload[8+i] = byte('a' + i%26)
	}
	slots := make(chan struct{}, *window)
	done := make(chan struct{})
	if qos > 0 {
		go func() {
			defer close(done)
			buf := make([]byte, 0, 64)
			for acked := 0; acked < n; {
				cl.c.SetReadDeadline(time.Now().Add(20 * time.Second))
				typ, _, err := cl.read(buf)
				if err != nil {
					return
				}
				if typ == decode.PUBACK {
					acked++
					<-slots
				}
			}
		}()
	} else {
		close(done)
	}
	var tick *time.Ticker
	if perSec > 0 {
		tick = time.NewTicker(time.Second / time.Duration(perSec))
		defer tick.Stop()
	}
	pkt := make([]byte, 0, *size+64)
	for i := range n {
		if tick != nil {
			<-tick.C
		}
		if qos > 0 {
			slots <- struct{}{}
		}
		binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
		p := &decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: topic, QoS: qos, Payload: payload}
		if qos > 0 {
			p.PacketID = uint16(i%65535 + 1)
		}
		pkt, _ = decode.Encode(pkt[:0], p)
		if err := cl.write(pkt); err != nil {
			return err
		}
	}
	<-done
	d, _ := decode.Encode(nil, &decode.Disconnect{Base: decode.Base{Version: decode.V5}})
	cl.write(d)
	return nil
}

// idleRun holds idle MQTT connections to addr and reports the memory per connection (growth of
// the resident set) of process pid, the proxy or the broker alone (what). The process holds
// fdsPer descriptors per connection: 2 for a proxy (device and broker sides), 1 for a proxy with
// the embedded broker (reached in memory) or for a broker.
func idleRun(what, proxyAddr string, pid, fdsPer int) (perConn int64, err error) {
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	n := *idle
	if n <= 0 {
		return 0, nil
	}
	if max := int(lim.Cur)/fdsPer - 64; n > max {
		fmt.Printf("\nidle: the open-file limit (%d) lets the proxy process hold at most %d connections; using %d\n", lim.Cur, max, max)
		n = max
	}
	runtime.GC()
	before, err := rss(pid)
	if err != nil {
		return 0, err
	}
	conns := make([]*client, 0, n)
	defer func() {
		for _, c := range conns {
			c.c.Close()
		}
	}()
	start := time.Now()
	for len(conns) < n {
		c, err := dial(proxyAddr)
		if err != nil {
			return 0, fmt.Errorf("idle connection %d: %w", len(conns), err)
		}
		conns = append(conns, c)
	}
	time.Sleep(2 * time.Second) // let the proxy's GC settle
	after, err := rss(pid)
	if err != nil {
		return 0, err
	}
	per := (after - before) / int64(n)
	fmt.Printf("\nidle: %d MQTT connections held by the %s (connected in %v): its RSS %d MB -> %d MB, %.1f KB per connection\n",
		n, what, time.Since(start).Round(time.Millisecond), before>>20, after>>20, float64(per)/1024)
	return per, nil
}

// rss returns the resident set of process pid in bytes.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS")
}
