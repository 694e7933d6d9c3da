package inspect

import (
	"bufio"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"io"
	"strconv"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect/payload"
	"github.com/mqscope/mqscope/internal/jsonstr"
	"github.com/mqscope/mqscope/stream"
)

// Flusher is implemented by writers that buffer: live sources call Flush when they go idle, so
// records reach a pipe as they happen rather than when a buffer fills.
type Flusher interface{ Flush() error }

// Writer writes records somewhere. Close flushes (the summary writer prints at Close).
type Writer interface {
	Write(Record) error
	Close() error
}

// JSONOptions configure the JSON-lines writer.
type JSONOptions struct {
	// Payload is how much of each payload to include (None: only payload_size).
	Payload     payload.Mode
	ShowSecrets bool
	// Connections leaves packet records out: the session, close and tls records tell each
	// connection's story in brief (the JSON form of --summary).
	Connections bool
}

// TimeFormat is the time format of JSON lines: RFC 3339 with nanoseconds.
const TimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

type jsonWriter struct {
	w   *bufio.Writer
	o   JSONOptions
	buf []byte
}

// NewJSONWriter returns a Writer of JSON lines, one object per record; README.md documents
// the keys as a stable interface.
func NewJSONWriter(w io.Writer, o JSONOptions) Writer {
	return &jsonWriter{w: bufio.NewWriter(w), o: o}
}

func (j *jsonWriter) Write(r Record) error {
	j.buf = AppendJSONLine(j.buf[:0], r, j.o)
	_, err := j.w.Write(j.buf)
	return err
}

// AppendJSONLine appends r as one line of JSON lines, or nothing when o leaves it out.
func AppendJSONLine(b []byte, r Record, o JSONOptions) []byte {
	if _, ok := r.(*PacketRecord); ok && o.Connections {
		return b
	}
	return append(AppendJSON(b, r, o), '\n')
}

func (j *jsonWriter) Close() error { return j.w.Flush() }

// Flush writes out what the writer buffers, for live output.
func (j *jsonWriter) Flush() error { return j.w.Flush() }

// AppendJSON appends the JSON object of a record (without a newline) to b.
func AppendJSON(b []byte, r Record, o JSONOptions) []byte {
	e := jsonObj{b: append(b, '{')}
	switch r := r.(type) {
	case *PacketRecord:
		packetJSON(&e, r, o)
	case *SessionRecord:
		e.connKeys("session", r.Time, r.Conn, 0, r.Client, r.Server, r.ClientID)
		e.tls(r.TLS)
		e.int("version", int(r.Version))
		if r.VersionFrom != VersionFromConnect {
			// No CONNECT was seen: requested is empty, and effective's defaults stand in
			// for what it would have said.
			e.str("version_from", cmp.Or(r.VersionFrom, "undecided"))
		}
		e.val("requested", r.Requested)
		e.val("granted", r.Granted)
		e.val("effective", r.Effective)
	case *EncryptedRecord:
		e.connKeys("tls", r.Time, r.Conn, 0, r.Client, r.Server, "")
		e.str("server_name", r.ServerName)
		e.val("alpn", append([]string{}, r.ALPN...))
		e.bool("mid_stream", r.MidStream)
		e.tls(r.TLS)
	case *FaultRecord:
		faultJSON(&e, r, o)
	case *CloseRecord:
		s := &r.State
		e.connKeys("close", r.Time, r.Conn, 0, r.Client, r.Server, r.ClientID)
		e.tls(r.TLS)
		e.str("by", r.By())
		e.str("reason", r.Reason())
		if !s.Started.IsZero() {
			e.int("duration_ns", int(r.Time.Sub(s.Started)))
		}
		e.val("packets", s.Packets)
		e.int("packets_c2s", s.PacketsC2S)
		e.int("packets_s2c", s.PacketsS2C)
		e.int("bytes_c2s", int(s.BytesC2S))
		e.int("bytes_s2c", int(s.BytesS2C))
		e.val("findings", nonNil(s.Findings))
		e.val("levels", nonNil(s.Levels))
		e.val("reasons", nonNil(s.Reasons))
		e.val("aliases_c2s", s.AliasesC2S)
		e.val("aliases_s2c", s.AliasesS2C)
		e.int("in_flight_c2s", s.InFlightC2S)
		e.int("in_flight_s2c", s.InFlightS2C)
		if s.VersionFrom != VersionFromConnect {
			// No CONNECT was seen: the version the packets were decoded with, and why.
			e.int("version", int(s.Version))
			e.str("version_from", cmp.Or(s.VersionFrom, "undecided"))
		}
		if s.Negotiated && s.Version == decode.V5 {
			e.int("session_expiry_interval", int(s.Effective.SessionExpiryInterval))
		}
		notesJSON(&e, r.Notes)
	}
	return append(e.b, '}')
}

// connKeys writes the keys every record starts with; index (packet records only) is left out
// when 0.
func (e *jsonObj) connKeys(kind string, t time.Time, conn, index int, client, server, clientID string) {
	e.str("kind", kind)
	e.time("time", t)
	e.int("conn", conn)
	if index > 0 {
		e.int("index", index)
	}
	e.str("client", client)
	e.str("server", server)
	e.str("client_id", clientID)
}

// tls writes the "tls" object of a connection decrypted (or to be decrypted) with a key
// log; nothing when t is nil.
func (e *jsonObj) tls(t *stream.TLSInfo) {
	if t == nil {
		return
	}
	e.key("tls")
	o := jsonObj{b: append(e.b, '{')}
	o.str("version", t.Version)
	o.str("cipher", t.Cipher)
	o.str("sni", t.ServerName)
	o.str("alpn", t.ALPN)
	o.bool("decrypted", t.Decrypted)
	if t.Problem != "" {
		o.str("problem", t.Problem)
	}
	e.b = append(o.b, '}')
}

func nonNil(m map[string]int) map[string]int {
	if m == nil {
		return map[string]int{}
	}
	return m
}

func packetJSON(e *jsonObj, r *PacketRecord, o JSONOptions) {
	e.connKeys("packet", r.Time, r.Conn, r.Index, r.Client, r.Server, r.ClientID)
	e.tls(r.TLS)
	e.str("dir", r.Dir.String())
	packetBodyJSON(e, r, o)
}

// packetBodyJSON writes the keys of a packet record that come from the packet itself, from
// version on; the connection's keys are written before it.
func packetBodyJSON(e *jsonObj, r *PacketRecord, o JSONOptions) {
	p := r.Packet
	t := p.Type()
	rd, hasPayload := r.recognise(o.Payload)
	e.int("version", int(r.Version))
	e.str("type", t.String())
	if r.ByProxy {
		e.bool("by_proxy", true)
	}
	if r.Fault != "" {
		e.str("fault", r.Fault)
	}
	e.int("size", r.Size())
	if id, ok := decode.PacketID(p); ok && id != 0 {
		e.int("packet_id", int(id))
	}
	switch q := p.(type) {
	case *decode.Connect:
		e.str("protocol_name", q.ProtocolName)
		e.int("protocol_level", int(q.ProtocolLevel))
		// Fields the packet ended before are left out: they are unknown, not empty.
		if q.Read(decode.PartFlags) {
			e.bool("clean_start", q.CleanStart)
		}
		if q.Read(decode.PartKeepAlive) {
			e.int("keep_alive", int(q.KeepAlive))
		}
		if q.Read(decode.PartClientID) {
			e.str("connect_client_id", q.ClientID)
		}
		if q.HasUsername && q.Read(decode.PartUsername) {
			e.str("username", q.Username)
		}
		if q.HasPassword && q.Read(decode.PartPassword) {
			if o.ShowSecrets {
				e.str("password", string(q.Password))
			} else {
				e.str("password", Redacted)
			}
		}
		if w := q.Will; w != nil && q.Read(decode.PartWill) {
			e.key("will")
			we := jsonObj{b: append(e.b, '{')}
			we.str("topic", w.Topic)
			we.int("qos", int(w.QoS))
			we.bool("retain", w.Retain)
			we.int("payload_size", len(w.Payload))
			propsJSON(&we, w.Properties, o)
			if hasPayload {
				payloadJSON(&we, r, &rd, o)
			}
			e.b = append(we.b, '}')
		}
	case *decode.Connack:
		e.bool("session_present", q.SessionPresent)
		e.int("reason_code", int(q.ReasonCode))
		e.str("reason", decode.ReasonName(r.Version, t, q.ReasonCode))
	case *decode.Publish:
		e.int("qos", int(q.QoS))
		e.bool("retain", q.Retain)
		e.bool("dup", q.Dup)
		e.str("topic", r.Topic)
		if a, ok := q.Properties.TopicAlias(); ok {
			e.int("topic_alias", int(a))
		}
		e.int("payload_size", len(q.Payload))
	case *decode.Ack:
		if q.HasReason || r.Version == decode.V5 {
			e.int("reason_code", int(q.ReasonCode))
			e.str("reason", q.ReasonCode.Name(t))
		}
	case *decode.Disconnect:
		if r.Version == decode.V5 {
			e.int("reason_code", int(q.ReasonCode))
			e.str("reason", q.ReasonCode.Name(t))
		}
	case *decode.Auth:
		e.int("reason_code", int(q.ReasonCode))
		e.str("reason", q.ReasonCode.Name(t))
	case *decode.Suback:
		reasonCodesJSON(e, r.Version, t, q.ReasonCodes)
	case *decode.Unsuback:
		if r.Version == decode.V5 {
			reasonCodesJSON(e, r.Version, t, q.ReasonCodes)
		}
	case *decode.Subscribe:
		e.key("subscriptions")
		e.b = append(e.b, '[')
		for i, s := range q.Subscriptions {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			se := jsonObj{b: append(e.b, '{')}
			se.str("filter", s.Filter)
			se.int("qos", int(s.QoS))
			se.bool("no_local", s.NoLocal)
			se.bool("retain_as_published", s.RetainAsPublished)
			se.int("retain_handling", int(s.RetainHandling))
			e.b = append(se.b, '}')
		}
		e.b = append(e.b, ']')
	case *decode.Unsubscribe:
		e.val("filters", q.Filters)
	}
	propsJSON(e, decode.PropertiesOf(p), o)
	if _, ok := p.(*decode.Publish); ok && hasPayload {
		payloadJSON(e, r, &rd, o)
	}
	if r.Response != nil {
		e.key("response_to")
		re := jsonObj{b: append(e.b, '{')}
		re.int("index", r.Response.Request)
		re.int("latency_ns", int(r.Response.Latency))
		e.b = append(re.b, '}')
	}
	notes := r.Notes
	if pn := payloadNotes(rd.Problems); len(pn) > 0 {
		notes = append(notes[:len(notes):len(notes)], pn...)
	}
	notesJSON(e, notes)
}

func notesJSON(e *jsonObj, notes []Note) {
	if len(notes) == 0 {
		return
	}
	e.key("notes")
	e.b = append(e.b, '[')
	for i := range notes {
		n := &notes[i]
		if i > 0 {
			e.b = append(e.b, ',')
		}
		ne := jsonObj{b: append(e.b, '{')}
		notesJSONOne(&ne, n)
		e.b = append(ne.b, '}')
	}
	e.b = append(e.b, ']')
}

// notesJSONOne writes the members of one note.
func notesJSONOne(ne *jsonObj, n *Note) {
	ne.str("level", n.Level.String())
	ne.str("rule", n.Rule)
	ne.str("text", n.Text)
	if n.Cause != nil {
		ne.key("cause")
		ce := jsonObj{b: append(ne.b, '{')}
		if n.Cause.Conn != 0 {
			ce.int("conn", n.Cause.Conn)
		}
		ce.int("index", n.Cause.Index)
		ce.str("type", n.Cause.Type.String())
		ce.str("summary", n.Cause.Summary)
		ne.b = append(ce.b, '}')
	}
}

func reasonCodesJSON(e *jsonObj, v decode.Version, t decode.Type, codes []decode.ReasonCode) {
	e.key("reason_codes")
	e.b = append(e.b, '[')
	for i, c := range codes {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		ce := jsonObj{b: append(e.b, '{')}
		ce.int("code", int(c))
		ce.str("reason", decode.ReasonName(v, t, c))
		e.b = append(ce.b, '}')
	}
	e.b = append(e.b, ']')
}

// propsJSON writes "properties" keyed by the standard's names in snake_case.
func propsJSON(e *jsonObj, ps decode.Properties, o JSONOptions) {
	if len(ps) == 0 {
		return
	}
	e.key("properties")
	pe := jsonObj{b: append(e.b, '{')}
	var users, subIDs []int
	for i, p := range ps {
		switch p.ID {
		case decode.PropUserProperty:
			users = append(users, i)
			continue
		case decode.PropSubscriptionID:
			subIDs = append(subIDs, i)
			continue
		}
		if !p.ID.Known() {
			continue
		}
		switch p.ID.Type() {
		case decode.TypeString:
			pe.str(p.ID.Key(), p.Str)
		case decode.TypeBinary:
			switch p.ID {
			case decode.PropCorrelationData:
				s, text := payload.CorrelationData(p.Bin)
				pe.str("correlation_data", s)
				if text {
					pe.str("correlation_data_encoding", "text")
				} else {
					pe.str("correlation_data_encoding", "hex")
				}
			case decode.PropAuthData:
				if o.ShowSecrets {
					pe.str(p.ID.Key(), base64.StdEncoding.EncodeToString(p.Bin))
				} else {
					pe.str(p.ID.Key(), Redacted)
				}
			default:
				pe.str(p.ID.Key(), base64.StdEncoding.EncodeToString(p.Bin))
			}
		default:
			pe.int(p.ID.Key(), int(p.Int))
		}
	}
	if len(subIDs) > 0 {
		pe.key("subscription_identifier")
		pe.b = append(pe.b, '[')
		for i, k := range subIDs {
			if i > 0 {
				pe.b = append(pe.b, ',')
			}
			pe.b = strconv.AppendUint(pe.b, uint64(ps[k].Int), 10)
		}
		pe.b = append(pe.b, ']')
	}
	if len(users) > 0 {
		pe.key("user_property")
		pe.b = append(pe.b, '[')
		for i, k := range users {
			if i > 0 {
				pe.b = append(pe.b, ',')
			}
			pe.b = append(pe.b, '[')
			pe.b = jsonstr.Append(pe.b, ps[k].Str)
			pe.b = append(pe.b, ',')
			pe.b = jsonstr.Append(pe.b, ps[k].Value)
			pe.b = append(pe.b, ']')
		}
		pe.b = append(pe.b, ']')
	}
	e.b = append(pe.b, '}')
}

// payloadJSON writes the payload keys (payload_format, payload or payload_b64, ...) of rd, the
// payload recognised.
func payloadJSON(e *jsonObj, r *PacketRecord, rd *payload.Rendered, o JSONOptions) {
	data, _, _ := payloadOf(r.Packet)
	e.b = payload.AppendFields(e.b, *rd, data, o.Payload, payload.Limits{}) // after other keys: e.n > 0
}

// jsonObj appends the members of a JSON object.
type jsonObj struct {
	b []byte
	n int
}

func (e *jsonObj) key(k string) {
	if e.n > 0 {
		e.b = append(e.b, ',', '"')
	} else {
		e.b = append(e.b, '"')
	}
	e.n++
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
}

func (e *jsonObj) str(k, v string) {
	e.key(k)
	e.b = jsonstr.Append(e.b, v)
}

func (e *jsonObj) time(k string, t time.Time) {
	e.key(k)
	e.b = appendJSONTime(e.b, t)
}

func (e *jsonObj) int(k string, v int) {
	e.key(k)
	e.b = strconv.AppendInt(e.b, int64(v), 10)
}

func (e *jsonObj) bool(k string, v bool) {
	e.key(k)
	e.b = strconv.AppendBool(e.b, v)
}

func (e *jsonObj) val(k string, v any) {
	e.key(k)
	switch x := v.(type) {
	case time.Time:
		e.b = appendJSONTime(e.b, x)
		return
	case json.RawMessage:
		if len(x) > 0 {
			e.b = append(e.b, x...)
			return
		}
	}
	b, err := jsonstr.Marshal(v)
	if err != nil {
		b = []byte("null")
	}
	e.b = append(e.b, b...)
}

// appendJSONTime appends t in TimeFormat as a JSON string. It writes the digits itself for
// years 0 to 9999 and offsets of whole minutes (what captures hold), else leaves it to
// time.Time.AppendFormat: the same bytes, several times faster.
func appendJSONTime(b []byte, t time.Time) []byte {
	_, off := t.Zone()
	year, month, day := t.Date()
	if year < 0 || year > 9999 || off%60 != 0 {
		return append(t.AppendFormat(append(b, '"'), TimeFormat), '"')
	}
	hour, minute, sec := t.Clock()
	s := []byte(`"0000-00-00T00:00:00.000000000Z"`)[:len(`"0000-00-00T00:00:00.000000000`)]
	putDigits(s[1:5], year)
	putDigits(s[6:8], int(month))
	putDigits(s[9:11], day)
	putDigits(s[12:14], hour)
	putDigits(s[15:17], minute)
	putDigits(s[18:20], sec)
	putDigits(s[21:30], t.Nanosecond())
	b = append(b, s...)
	if off == 0 {
		return append(b, 'Z', '"')
	}
	z := []byte(`+00:00"`)
	if off < 0 {
		z[0], off = '-', -off
	}
	putDigits(z[1:3], off/3600)
	putDigits(z[4:6], off/60%60)
	return append(b, z...)
}

// putDigits writes v (≥ 0) in decimal into d, zero-padded to its length, two digits at a time.
func putDigits(d []byte, v int) {
	const pairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
		"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
		"8081828384858687888990919293949596979899"
	i := len(d)
	for ; i >= 2; i -= 2 {
		p := v % 100 * 2
		d[i-1], d[i-2] = pairs[p+1], pairs[p]
		v /= 100
	}
	if i == 1 {
		d[0] = byte('0' + v%10)
	}
}
