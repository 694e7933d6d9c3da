package proxy

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// Metrics counts what the proxy forwarded. It writes itself in the Prometheus text format
// (version 0.0.4), which is small enough not to need a client library.
type Metrics struct {
	open    atomic.Int64
	total   atomic.Uint64
	bytes   [2]atomic.Uint64
	packets [2][16]atomic.Uint64
	pbytes  [2][16]atomic.Uint64

	mu       sync.Mutex
	findings map[[2]string]uint64 // rule, level
	dropped  atomic.Uint64
	events   atomic.Uint64 // event stream records dropped
	refusedN atomic.Uint64 // connections closed at once for MaxConns
	acceptN  atomic.Uint64 // failed accepts (out of file descriptors...)
}

// NewMetrics returns zeroed counters.
func NewMetrics() *Metrics { return &Metrics{findings: map[[2]string]uint64{}} }

func (m *Metrics) connOpened()   { m.open.Add(1); m.total.Add(1) }
func (m *Metrics) connClosed()   { m.open.Add(-1) }
func (m *Metrics) refused()      { m.refusedN.Add(1) }
func (m *Metrics) acceptFailed() { m.acceptN.Add(1) }

func (m *Metrics) bytesIn(d stream.Dir, n int) { m.bytes[d].Add(uint64(n)) }

// packet counts n bytes of a frame of type typ; start: the first bytes of a new frame.
func (m *Metrics) packet(d stream.Dir, typ byte, start bool, n int) {
	if start {
		m.packets[d][typ&15].Add(1)
	}
	m.pbytes[d][typ&15].Add(uint64(n))
}

// Finding counts one finding of rule (empty: a finding without a rule of the standard).
func (m *Metrics) Finding(rule, level string) {
	if rule == "" {
		rule = "none"
	}
	m.mu.Lock()
	m.findings[[2]string{rule, level}]++
	m.mu.Unlock()
}

// Dropped counts output records dropped because a reader was too slow.
func (m *Metrics) Dropped(n int) { m.dropped.Add(uint64(n)) }

// EventsDropped counts records an event stream of the control API lost for a slow subscriber.
func (m *Metrics) EventsDropped(n int) { m.events.Add(uint64(n)) }

// OpenConns returns the number of connections open now.
func (m *Metrics) OpenConns() int64 { return m.open.Load() }

// Packets returns how many packets of type t went in direction d.
func (m *Metrics) Packets(d stream.Dir, t decode.Type) uint64 { return m.packets[d][t&15].Load() }

// WriteTo writes the counters in the Prometheus text exposition format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriter(w)
	cw := &countWriter{w: bw}
	p := func(format string, args ...any) { fmt.Fprintf(cw, format, args...) }
	p("# HELP mqscope_connections_open Proxied connections open now.\n# TYPE mqscope_connections_open gauge\n")
	p("mqscope_connections_open %d\n", m.open.Load())
	p("# HELP mqscope_connections_total Proxied connections accepted.\n# TYPE mqscope_connections_total counter\n")
	p("mqscope_connections_total %d\n", m.total.Load())
	p("# HELP mqscope_connections_refused_total Connections closed at once: the most allowed were open (--max-conns).\n# TYPE mqscope_connections_refused_total counter\n")
	p("mqscope_connections_refused_total %d\n", m.refusedN.Load())
	p("# HELP mqscope_accept_failures_total Failed accepts (out of file descriptors and the like).\n# TYPE mqscope_accept_failures_total counter\n")
	p("mqscope_accept_failures_total %d\n", m.acceptN.Load())
	p("# HELP mqscope_bytes_total Bytes passed on, by direction: forwarded, or sent by the proxy itself (a DISCONNECT, a CONNACK for an unreachable broker).\n# TYPE mqscope_bytes_total counter\n")
	for d := range 2 {
		p("mqscope_bytes_total{direction=%q} %d\n", stream.Dir(d).String(), m.bytes[d].Load())
	}
	p("# HELP mqscope_packets_total MQTT packets passed on (forwarded or sent by the proxy), by type and direction.\n# TYPE mqscope_packets_total counter\n")
	for d := range 2 {
		for t := range 16 {
			if n := m.packets[d][t].Load(); n > 0 {
				p("mqscope_packets_total{direction=%q,type=%q} %d\n", stream.Dir(d).String(), decode.Type(t).String(), n)
			}
		}
	}
	p("# HELP mqscope_packet_bytes_total Bytes of MQTT packets passed on, by type and direction, counted as they go (not by the length a packet declares).\n# TYPE mqscope_packet_bytes_total counter\n")
	for d := range 2 {
		for t := range 16 {
			if n := m.pbytes[d][t].Load(); n > 0 {
				p("mqscope_packet_bytes_total{direction=%q,type=%q} %d\n", stream.Dir(d).String(), decode.Type(t).String(), n)
			}
		}
	}
	p("# HELP mqscope_findings_total Findings, by rule of the standard and level.\n# TYPE mqscope_findings_total counter\n")
	m.mu.Lock()
	keys := make([][2]string, 0, len(m.findings))
	for k := range m.findings {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	for _, k := range keys {
		p("mqscope_findings_total{rule=%q,level=%q} %d\n", k[0], k[1], m.findings[k])
	}
	m.mu.Unlock()
	p("# HELP mqscope_output_dropped_total Output records dropped for slow readers.\n# TYPE mqscope_output_dropped_total counter\n")
	p("mqscope_output_dropped_total %d\n", m.dropped.Load())
	p("# HELP mqscope_events_dropped_total Event stream records dropped for slow subscribers.\n# TYPE mqscope_events_dropped_total counter\n")
	p("mqscope_events_dropped_total %d\n", m.events.Load())
	if cw.err != nil {
		return cw.n, cw.err
	}
	return cw.n, bw.Flush()
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(b []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
	return n, err
}
