package capture

import (
	"io"

	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// Inspector is a stream.Observer that inspects every MQTT connection with package inspect and
// passes the records on. With a Filter, only the packet records it accepts are passed, and of
// the session and close records those after a connection's first accepted packet (the close
// record's State tells the negotiation all the same); TLS records always pass. Call Close
// at the end.
type Inspector struct {
	Options inspect.Options
	Filter  func(*inspect.PacketRecord) bool
	// Emit receives the records in order. Its first error stops emitting and is kept.
	Emit func(inspect.Record) error
	// Workers > 1 inspects connections on that many goroutines; records still come out in
	// order, the same as with one. Conn.Data then reports nothing: not for Options.Keep.
	Workers int
	// Render, with Workers, turns the records (packet, session, close, TLS) into bytes on the
	// workers (inspect.AppendJSON, inspect.AppendText), which are written to Out instead of
	// going to Emit.
	Render func(b []byte, r inspect.Record) []byte
	Out    io.Writer
	// Collect, with Workers and instead of Render, receives packet, session and close records
	// on the worker that inspected them (0 to Workers-1), for a result built per worker (e.g. an
	// inspect.Summary each). seq is the record's place in the output order: it grows with each
	// connection's records and orders the first records of different connections.
	Collect func(worker int, seq int64, r inspect.Record)
	// Collected, with Collect, is called on one goroutine each time every record up to place
	// seq has been collected (e.g. inspect.SummaryWriter.Written, to write what is complete);
	// its first error stops emitting and is kept.
	Collected func(seq int64) error
	// Reuse, with Render or Collect, says it keeps no packet record, nor anything of one but
	// strings (not its packet's bytes), once it returns: the workers then hand the records of
	// packets out again (inspect.Records), instead of allocating each, and frame the batches'
	// bytes in place (inspect.Preframer.FeedLent), to be used again once written.
	Reuse bool

	err error
	par *parallel
	one *inspect.Observer // with one worker: inspects on the source's goroutine
}

// Close waits for the records of every connection to be emitted and returns the first error.
func (in *Inspector) Close() error {
	if in.par != nil {
		in.par.close()
	}
	return in.Err()
}

// Err returns the first error of Emit (or of Out).
func (in *Inspector) Err() error {
	if in.err == nil && in.par != nil {
		in.par.mu.Lock()
		in.err = in.par.err
		in.par.mu.Unlock()
	}
	return in.err
}

func (in *Inspector) emit(r inspect.Record) {
	if in.err == nil {
		in.err = in.Emit(r)
	}
}

// Open implements stream.Observer.
func (in *Inspector) Open(info *stream.Conn) stream.ConnObserver {
	client, server := info.Client.String(), info.Server.String()
	if in.Workers > 1 && in.par == nil {
		in.par = newParallel(in)
	}
	if info.Transport == stream.TLS && (info.TLS == nil || !info.TLS.Decrypted) {
		// Encrypted: listed (whatever the filter) in its place among the other connections' records.
		r := &inspect.EncryptedRecord{Time: info.Start, Conn: info.ID, Client: client, Server: server,
			ServerName: info.ServerName, ALPN: info.ALPN, MidStream: info.MidStream, TLS: info.TLS}
		if p := in.par; p != nil {
			pc := &pconn{p: p, worker: -1}
			pc.assign(stream.C2S, nil)
			p.add(pc, evTLS).tls = r
			p.added()
		} else {
			in.emit(r)
		}
		return nil // nothing more to hear of it
	}
	if p := in.par; p != nil {
		pc := &pconn{p: p, c: inspect.NewConnOf(info, in.Options), worker: -1}
		if !info.MidStream {
			pc.pre = inspect.NewPreframer(in.Options)
		}
		return pc
	}
	if in.one == nil {
		in.one = &inspect.Observer{Options: in.Options, Match: in.Filter, Emit: in.emit}
	}
	return in.one.Open(info)
}
