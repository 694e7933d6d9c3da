package inspect

import (
	"io"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect/payload"
)

// WriteDetailJSON writes one packet, decoded out of any connection, as a JSON line: the packet
// keys of the JSON-lines interface (from "version" on, payloads per mode), plus the packet's
// index and offset in its input, its problems as notes with their offsets and fields, and
// every located field.
func WriteDetailJSON(w io.Writer, index int, offset int64, p decode.Packet, mode payload.Mode, showSecrets bool) error {
	b := p.Info()
	r := &PacketRecord{Version: b.Version, Packet: p, Index: index}
	if pub, ok := p.(*decode.Publish); ok {
		r.Topic = pub.Topic // as sent: there is no alias table outside a connection
	}
	e := jsonObj{b: []byte{'{'}}
	e.str("kind", "packet")
	e.int("index", index)
	e.int("offset", int(offset))
	packetBodyJSON(&e, r, JSONOptions{Payload: mode, ShowSecrets: showSecrets})
	if len(b.Problems) > 0 {
		e.key("problems")
		e.b = append(e.b, '[')
		for i, pr := range b.Problems {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			pe := jsonObj{b: append(e.b, '{')}
			pe.str("level", pr.Level.String())
			if pr.Rule != "" {
				pe.str("rule", pr.Rule)
			}
			pe.str("text", pr.Message)
			pe.int("offset", int(offset)+pr.Offset)
			pe.str("field", pr.Field)
			if pr.Reason != 0 {
				pe.int("reason_code", int(pr.Reason))
			}
			e.b = append(pe.b, '}')
		}
		e.b = append(e.b, ']')
	}
	e.key("fields")
	e.b = append(e.b, '[')
	for i, f := range b.Fields {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		fe := jsonObj{b: append(e.b, '{')}
		fe.str("name", f.Name)
		fe.int("offset", int(offset)+f.Offset)
		fe.int("len", f.Len)
		e.b = append(fe.b, '}')
	}
	e.b = append(e.b, ']', '}', '\n')
	_, err := w.Write(e.b)
	return err
}
