package inspect

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect/payload"
	"github.com/mqscope/mqscope/stream"
)

// Record is one thing an inspected connection reports: *PacketRecord ("packet"),
// *SessionRecord ("session"), *CloseRecord ("close"), *EncryptedRecord ("tls") or
// *FaultRecord ("fault", a fault of the proxy).
type Record interface{ Kind() string }

// PacketRecord is one packet of a connection with what inspection found out about it.
type PacketRecord struct {
	Time     time.Time
	Conn     int
	Client   string // "ip:port"
	Server   string // "ip:port"
	ClientID string // the client identifier of the connection (assigned one if the server assigned it)
	Dir      stream.Dir
	Version  decode.Version
	// Packet is the decoded packet. Its fields are not located (decode.Options.Lean): decode the
	// Raw bytes again to show where each one is.
	Packet decode.Packet
	// Index numbers the packets of a connection from 1, both directions together.
	Index int
	// Topic is the PUBLISH topic resolved through the sender's topic alias table ("" when
	// neither the packet nor the table has it).
	Topic string
	// Notes are the findings about this packet: the decoder's problems first, then the
	// connection's.
	Notes []Note
	// Response links a PUBLISH that answers a request (same Response Topic and Correlation
	// Data) to its request; nil otherwise.
	Response *ResponseRef
	// ByProxy is set on a packet mqscope's proxy sent on its own (a DISCONNECT at shutdown or
	// on the control API's request, a CONNACK for an unreachable broker), not passed on from
	// the peer whose direction it travels in.
	ByProxy bool
	// Fault names the proxy's fault rule that altered or sent this packet ("" when none); its
	// FaultRecord comes before the packet's record.
	Fault string
	// TLS is set when the connection was decrypted from TLS.
	TLS *stream.TLSInfo

	alt  *stream.Alteration // what the fault did, for cause links
	lent bool               // the packet was decoded from bytes lent (Preframer.FeedLent): see Conn.Detach

	payloadCache [2]atomic.Pointer[payload.Rendered] // by mode - 1
}

// Kind returns "packet".
func (*PacketRecord) Kind() string { return "packet" }

// Type returns the packet's type.
func (r *PacketRecord) Type() decode.Type { return r.Packet.Type() }

// Size returns the packet's size on the wire, fixed header included.
func (r *PacketRecord) Size() int { return r.Packet.Info().Size() }

// Rendered returns the payload of a PUBLISH (or the Will of a CONNECT) rendered in mode m,
// computed once per mode; nil when the packet has no payload to show or m is None. It is safe
// to call from several goroutines (writers sharing a record).
func (r *PacketRecord) Rendered(m payload.Mode) *payload.Rendered {
	if m != payload.Preview && m != payload.Full {
		return nil
	}
	if c := r.payloadCache[m-1].Load(); c != nil {
		return c
	}
	data, h, ok := payloadOf(r.Packet)
	if !ok {
		return nil
	}
	rd := payload.Render(data, h, m, payload.Limits{})
	r.payloadCache[m-1].Store(&rd)
	return &rd
}

// recognise is what the payload keys of JSON lines and PayloadNotes need: the rendering in
// mode m when there is one already, else payload.Recognise (Render without the text),
// computed for the caller alone. ok is false when Rendered would return nil.
func (r *PacketRecord) recognise(m payload.Mode) (rd payload.Rendered, ok bool) {
	if m != payload.Preview && m != payload.Full {
		return rd, false
	}
	if c := r.payloadCache[m-1].Load(); c != nil {
		return *c, true
	}
	data, h, ok := payloadOf(r.Packet)
	if !ok {
		return rd, false
	}
	return payload.Recognise(data, h, m, payload.Limits{}), true
}

// payloadOf returns the payload a packet carries and its hints.
func payloadOf(p decode.Packet) ([]byte, payload.Hints, bool) {
	var ps decode.Properties
	var data []byte
	will := false
	switch q := p.(type) {
	case *decode.Publish:
		ps, data = q.Properties, q.Payload
	case *decode.Connect:
		if q.Will == nil {
			return nil, payload.Hints{}, false
		}
		ps, data, will = q.Will.Properties, q.Will.Payload, true
	default:
		return nil, payload.Hints{}, false
	}
	h := payload.Hints{FormatIndicator: -1, Will: will}
	h.ContentType, _ = ps.String(decode.PropContentType)
	if v, ok := ps.Int(decode.PropPayloadFormat); ok {
		h.FormatIndicator = int(v)
	}
	return data, h, true
}

// MaxLevel returns the most severe level among the record's notes, and false when it has none.
func (r *PacketRecord) MaxLevel() (decode.Level, bool) {
	if len(r.Notes) == 0 {
		return 0, false
	}
	l := decode.LevelInfo
	for _, n := range r.Notes {
		l = min(l, n.Level)
	}
	return l, true
}

// HasRule reports whether any note of the record has the given rule ID.
func (r *PacketRecord) HasRule(rule string) bool {
	for _, n := range r.Notes {
		if n.Rule == rule {
			return true
		}
	}
	return false
}

// Note is one finding about a packet.
type Note struct {
	Level decode.Level
	// Rule is the standard's conformance statement ("MQTT-3.3.2-8") or an mqscope ID
	// ("MQSCOPE-ALIAS-UNKNOWN"); see RuleText.
	Rule string
	// Text says what is wrong, for a firmware engineer.
	Text string
	// Cause links an error reason code to the packet that most likely caused it.
	Cause *CauseRef
	// Reason is the reason code a receiver would answer this with (0 when none).
	Reason decode.ReasonCode

	why string // a short phrase for cause links; Text when empty
}

// MarshalJSON writes a note as the JSON lines do: {"level":"error","rule":…,"text":…,"cause":…}.
func (n Note) MarshalJSON() ([]byte, error) {
	e := jsonObj{b: []byte{'{'}}
	notesJSONOne(&e, &n)
	return append(e.b, '}'), nil
}

// whyText is the phrase a cause link uses for this note.
func (n *Note) whyText() string {
	if n.why != "" {
		return n.why
	}
	return n.Text
}

// CauseRef points at an earlier packet: of the same connection, or of connection Conn when
// Conn is not 0 (a session takeover).
type CauseRef struct {
	Conn    int         `json:"conn,omitempty"` // another connection's id; 0 for this connection
	Index   int         `json:"index"`          // the packet's Index
	Type    decode.Type `json:"-"`              // its type
	Summary string      `json:"summary"`        // e.g. "PUBLISH #41, 300 bytes, over the 200-byte Maximum Packet Size granted in CONNACK"
}

// ResponseRef links a response to its request.
type ResponseRef struct {
	Request int           // Index of the request PUBLISH
	Latency time.Duration // time from the request to this response
}

// SessionRecord reports what was negotiated, right after the CONNACK's packet record.
type SessionRecord struct {
	Time     time.Time
	Conn     int
	Client   string
	Server   string
	ClientID string
	Version  decode.Version
	// VersionFrom says how Version was decided (ConnState.VersionFrom); anything but
	// "connect" means the CONNECT was not seen, so Requested is empty and Effective holds
	// defaults where CONNECT would have said.
	VersionFrom string
	Requested   Requested
	Granted     Granted
	Effective   Effective
	TLS         *stream.TLSInfo // set when the connection was decrypted from TLS
}

// Kind returns "session".
func (*SessionRecord) Kind() string { return "session" }

// CloseRecord reports the end of a connection.
type CloseRecord struct {
	Time     time.Time
	Conn     int
	Client   string
	Server   string
	ClientID string
	// End is how the connection ended, as its source told: who, how, and the source's detail.
	// By and Reason put it in words.
	End stream.End
	// Disconnect is the first DISCONNECT of the connection, the one that ended it; nil when
	// none was seen.
	Disconnect *DisconnectRef
	// Notes are findings about the end of the connection: a close without DISCONNECT (with the
	// last packet before it as the cause), messages left unacknowledged.
	Notes []Note
	// State is the connection's final state: negotiation, alias tables and counters.
	State ConnState
	TLS   *stream.TLSInfo // set when the connection was decrypted from TLS
}

// Kind returns "close".
func (*CloseRecord) Kind() string { return "close" }

// EncryptedRecord lists a connection whose bytes are encrypted (TLS): where it went and, from
// its ClientHello, the server name it asked for, but not what it carried.
type EncryptedRecord struct {
	Time       time.Time
	Conn       int
	Client     string
	Server     string
	ServerName string   // from the ClientHello; "" when none was captured
	ALPN       []string // the application protocols the ClientHello offered
	MidStream  bool     // the start was not captured
	// TLS is set when keys were given to decrypt the capture: what is known of the
	// connection's TLS and why it was not decrypted.
	TLS *stream.TLSInfo
}

// tlsDescribe is the text form of a connection's TLS: "TLS 1.3 TLS_AES_128_GCM_SHA256".
func tlsDescribe(t *stream.TLSInfo) string {
	s := t.Version
	if s == "" {
		s = "TLS"
	}
	if t.Cipher != "" {
		s += " " + t.Cipher
	}
	return s
}

// Kind returns "tls".
func (*EncryptedRecord) Kind() string { return "tls" }

// DisconnectRef is a DISCONNECT that ended a connection: who sent it, with which reason code.
type DisconnectRef struct {
	Dir  stream.Dir
	Code decode.ReasonCode
}

// endedOpen reports whether nobody closed the connection: its source ended first.
func (r *CloseRecord) endedOpen() bool { return r.End.By == stream.SourceEnd }

// By says who closed the connection: the sender of its DISCONNECT when one was seen ("client",
// "server"), "proxy" when mqscope's proxy ended it; otherwise who ended the transport:
// "client", "server", "unknown", and for a TCP close told by a capture "client-eof",
// "server-reset" and the like.
func (r *CloseRecord) By() string {
	e := r.End
	switch {
	case r.Disconnect != nil && e.By != stream.Proxy:
		return r.Disconnect.Dir.Sender().String()
	case e.By == stream.SourceEnd || e.By == stream.Unknown:
		return "unknown"
	case e.Detail == "" && e.How == stream.FIN:
		return e.By.String() + "-eof"
	case e.Detail == "" && e.How == stream.RST:
		return e.By.String() + "-reset"
	}
	return e.By.String()
}

// Reason says why the connection closed: the DISCONNECT that ended it first, with its reason
// code, then how the transport ended (the source's detail, the TCP FIN or RST and from whom),
// or that the capture ended first.
func (r *CloseRecord) Reason() string {
	e := r.End
	d := r.Disconnect
	if d == nil || e.By == stream.Proxy {
		return r.transportEnd()
	}
	s := fmt.Sprintf("%s sent DISCONNECT 0x%02X %s", d.Dir.Sender(), byte(d.Code), d.Code.Name(decode.DISCONNECT))
	switch {
	case e.By == stream.SourceEnd:
		return s + "; the capture ended before the connection closed"
	case e.Detail == "" && (e.How == stream.FIN || e.How == stream.RST) && e.By != stream.Unknown:
		return s + ", then TCP " + e.How.String() + " from the " + e.By.String()
	case r.transportEnd() != "":
		return s + ", then " + r.transportEnd()
	}
	return s
}

// transportEnd says how the transport ended, as the source told.
func (r *CloseRecord) transportEnd() string {
	e := r.End
	switch {
	case e.Detail != "":
		return e.Detail
	case e.By == stream.SourceEnd:
		return "the capture ended with the connection open"
	case e.How == stream.FIN:
		return "TCP FIN"
	case e.How == stream.RST:
		return "TCP RST"
	}
	return ""
}

// closeText is how the text and the summary say how a connection ended.
func closeText(r *CloseRecord) string {
	by, reason := r.By(), r.Reason()
	switch {
	case r.endedOpen() && reason != "":
		return reason // "the capture ended with the connection open": nobody closed it
	case reason != "":
		return "closed by " + by + ": " + reason
	}
	return "closed by " + by
}

// decryptedLine says how a connection was decrypted.
func decryptedLine(t *stream.TLSInfo) string {
	s := tlsDescribe(t) + ", decrypted with the key log"
	var extra []string
	if t.ServerName != "" {
		extra = append(extra, "server name: "+t.ServerName)
	}
	if t.ALPN != "" {
		extra = append(extra, "ALPN: "+t.ALPN)
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	if t.Problem != "" {
		s += "; not all of it: " + t.Problem
	}
	return s
}

// encryptedLine is the text form of an encrypted connection, after its time and id.
func encryptedLine(r *EncryptedRecord) string {
	name := r.ServerName
	if name == "" {
		name = "not captured"
	}
	alpn := ""
	if len(r.ALPN) > 0 {
		alpn = ", ALPN: " + strings.Join(r.ALPN, " ")
	}
	s := fmt.Sprintf("%s → %s  TLS, encrypted: not decoded (server name: %s%s)", r.Client, r.Server, name, alpn)
	if t := r.TLS; t != nil {
		s = fmt.Sprintf("%s → %s  %s, not decrypted: %s (server name: %s%s)", r.Client, r.Server, tlsDescribe(t), t.Problem, name, alpn)
	}
	if r.MidStream {
		s += "; its start was not captured"
	}
	return s
}

// PayloadNotes are findings about the payload made while rendering it in mode m (a Content
// Type the payload does not match, a damaged compressed stream, a payload too large to
// decode), with rule MQSCOPE-PAYLOAD-CONTENT. They depend on rendering, so they are not among
// Notes; writers show them with the payload. The UTF-8 check of Payload Format Indicator 1 is
// in Notes already (from the decoder) and is left out here.
func (r *PacketRecord) PayloadNotes(m payload.Mode) []Note {
	rd, _ := r.recognise(m)
	return payloadNotes(rd.Problems)
}

func payloadNotes(problems []payload.Problem) []Note {
	var out []Note
	for _, p := range problems {
		if p.Rule != "" {
			continue
		}
		l := decode.LevelInfo
		switch p.Level {
		case payload.LevelError:
			l = decode.LevelError
		case payload.LevelWarning:
			l = decode.LevelWarning
		}
		out = append(out, Note{Level: l, Rule: RulePayloadContent, Text: p.Text})
	}
	return out
}

// typeCount counts packets by type, and all of them.
type typeCount[T int | int32] struct {
	byType [16]T
	total  T
}

func (tc *typeCount[T]) add(t decode.Type) {
	tc.byType[t&15]++
	tc.total++
}
