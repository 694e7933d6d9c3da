package ui

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/inspect/payload"
	"github.com/mqscope/mqscope/stream"
)

// Node is one line of the detail tree: a field with its bytes, a finding, or a link.
type Node struct {
	Text string
	// Start and End locate the node's bytes in the packet (Raw[Start:End]); equal when it has
	// none.
	Start, End int
	// Finding is set on a finding's node, of level Level.
	Finding bool
	Level   decode.Level
	// Jump is where a link leads; nil for other nodes.
	Jump     *Jump
	Children []*Node
}

// Jump is a link to another packet: of connection Conn, its packet Index.
type Jump struct {
	Conn, Index int
	Why         string // "answers", "caused by", "request"
}

// Detail is the detail of one packet: its tree and its bytes.
type Detail struct {
	Seq    int
	Record *inspect.PacketRecord
	Root   *Node
	// Raw is the packet's bytes, Secret the ranges of them not to show (a password,
	// authentication data) unless secrets are shown.
	Raw    []byte
	Secret [][2]int
}

// DetailOptions control Detail.
type DetailOptions struct {
	ShowSecrets bool
}

func node(text string, start, end int) *Node { return &Node{Text: text, Start: start, End: end} }

// Detail builds the detail of packet seq; ok is false when the packet is not held.
func (m *Model) Detail(seq int, o DetailOptions) (d Detail, ok bool) {
	m.mu.Lock()
	r := m.packet(seq)
	var answers *Jump
	if r != nil {
		answers = m.answers(seq, r)
	}
	m.mu.Unlock()
	if r == nil {
		return d, false
	}
	// Records carry packets decoded without field locations: decode the bytes again.
	p := decode.Decode(r.Packet.Info().Raw, r.Version)
	b := p.Info()
	d = Detail{Seq: seq, Record: r, Raw: b.Raw}
	title := fmt.Sprintf("#%d %s %s, connection %d, %d bytes", r.Index, p.Type(), dirName(r.Dir), r.Conn, len(b.Raw))
	if r.ByProxy {
		title += ", sent by mqscope's proxy"
	}
	d.Root = node(title, 0, len(b.Raw))
	fv := fieldValues{p: p, showSecrets: o.ShowSecrets, seen: map[string]int{}}
	groups := map[string]*Node{}
	fields := b.Fields
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		start, end := f.Offset, f.Offset+f.Len
		name := f.Name
		if strings.HasSuffix(name, ".name") && i+1 < len(fields) && fields[i+1].Name == strings.TrimSuffix(name, ".name")+".value" {
			// A user property: its name and value are one node.
			name = strings.TrimSuffix(name, ".name")
			end = fields[i+1].Offset + fields[i+1].Len
			i++
		}
		if secretName(name) {
			d.Secret = append(d.Secret, [2]int{min(start+2, end), end})
		}
		text := fv.text(name, b.Raw[min(start, len(b.Raw)):min(end, len(b.Raw))])
		g, leaf := groupOf(name)
		n := groups[g]
		switch {
		case g == "":
			d.Root.Children = append(d.Root.Children, node(leaf+": "+text, start, end))
			continue
		case n == nil || g == "subscription" && leaf == "filter":
			// A new group; each subscription of a SUBSCRIBE is one.
			n = node(g, start, end)
			groups[g] = n
			d.Root.Children = append(d.Root.Children, n)
		}
		n.End = max(n.End, end)
		n.Children = append(n.Children, node(leaf+": "+text, start, end))
	}
	if r.Topic != "" && p.Type() == decode.PUBLISH && r.Packet.(*decode.Publish).Topic == "" {
		d.Root.Children = append(d.Root.Children, node("topic (through its alias): "+strconv.Quote(r.Topic), 0, 0))
	}
	if rd := r.Rendered(payload.Full); rd != nil && rd.Format != payload.FormatText && rd.Format != payload.FormatEmpty && rd.Format != payload.FormatBinary && p.Type() == decode.PUBLISH {
		// What the payload is, beyond its bytes: JSON, CBOR, protobuf, compressed...
		pl := rd.Text
		pn := node("payload as "+rd.Format, 0, 0)
		for _, l := range strings.Split(pl, "\n") {
			pn.Children = append(pn.Children, node(l, 0, 0))
		}
		d.Root.Children = append(d.Root.Children, pn)
	}
	for _, f := range m.FaultsOf(r) {
		text := "fault " + f.Rule + " applied by mqscope's proxy: " + f.Did
		if f.Used != "" {
			text += " (" + f.Used + ")"
		}
		fn := node(text, 0, len(b.Raw))
		if f.Original != nil {
			fn.Children = append(fn.Children, node(fmt.Sprintf("as the sender sent it: %s, %d bytes", f.Original.Type(), len(f.Before)), 0, 0))
		}
		d.Root.Children = append(d.Root.Children, fn)
	}
	var links []*Node
	if answers != nil {
		links = append(links, linkNode(answers))
	}
	if rs := r.Response; rs != nil {
		links = append(links, linkNode(&Jump{Conn: r.Conn, Index: rs.Request, Why: fmt.Sprintf("response to the request #%d, after %s", rs.Request, rs.Latency.Round(time.Microsecond))}))
	}
	for _, n := range r.Notes {
		fn := &Node{Text: fmt.Sprintf("%s %s: %s", n.Level, n.Rule, n.Text), Finding: true, Level: n.Level}
		for _, pr := range b.Problems {
			if pr.Rule == n.Rule && pr.Message != "" && strings.Contains(n.Text, pr.Message) {
				fn.Start, fn.End = pr.Offset, min(pr.Offset+1, len(b.Raw))
			}
		}
		if c := n.Cause; c != nil {
			conn := r.Conn
			if c.Conn != 0 {
				conn = c.Conn
			}
			j := &Jump{Conn: conn, Index: c.Index, Why: "caused by " + c.Summary}
			fn.Children = append(fn.Children, linkNode(j))
			links = append(links, linkNode(j))
		}
		d.Root.Children = append(d.Root.Children, fn)
	}
	if len(links) > 0 {
		ln := node("links", 0, 0)
		ln.Children = links
		d.Root.Children = append(d.Root.Children, ln)
	}
	return d, true
}

func linkNode(j *Jump) *Node {
	n := node("→ "+j.Why, 0, 0)
	n.Jump = j
	return n
}

// secretName tells whether a field holds a secret (its bytes after a 2-byte length).
func secretName(name string) bool {
	return name == "password" || name == "properties.authentication_data"
}

// groupOf returns the group a field is shown in ("" for none) and its name there.
func groupOf(name string) (group, leaf string) {
	for _, g := range []string{"fixed_header", "will.properties", "properties", "will", "subscription"} {
		if rest, ok := strings.CutPrefix(name, g+"."); ok {
			return strings.ReplaceAll(g, "_", " "), rest
		}
	}
	return "", name
}

// fieldValues formats the value of each located field of a packet.
type fieldValues struct {
	p           decode.Packet
	showSecrets bool
	seen        map[string]int // how many fields of each name were formatted
}

func (fv *fieldValues) text(name string, raw []byte) string {
	i := fv.seen[name]
	fv.seen[name]++
	p := fv.p
	b := p.Info()
	switch name {
	case "fixed_header.type_flags":
		return fmt.Sprintf("%s, flags 0x%X", b.Header.Type, b.Header.Flags)
	case "fixed_header.remaining_length":
		return strconv.Itoa(b.Header.RemainingLength)
	case "properties.length", "will.properties.length":
		n, _, _ := decode.ReadVarInt(raw) // 0 when malformed
		return fmt.Sprintf("%d bytes", n)
	}
	if key, ok := strings.CutPrefix(name, "will.properties."); ok {
		if c, ok := p.(*decode.Connect); ok && c.Will != nil {
			return propText(c.Will.Properties, key, i, fv.showSecrets)
		}
	}
	if key, ok := strings.CutPrefix(name, "properties."); ok {
		return propText(decode.PropertiesOf(p), key, i, fv.showSecrets)
	}
	switch q := p.(type) {
	case *decode.Connect:
		switch name {
		case "protocol_name":
			return strconv.Quote(q.ProtocolName)
		case "connect_flags":
			return fmt.Sprintf("0x%02X (clean start %t, will %t, username %t, password %t)", q.Flags, q.CleanStart, q.Will != nil, q.HasUsername, q.HasPassword)
		case "keep_alive":
			return fmt.Sprintf("%d s", q.KeepAlive)
		case "client_id":
			return strconv.Quote(q.ClientID)
		case "username":
			return strconv.Quote(q.Username)
		case "password":
			if !fv.showSecrets {
				return fmt.Sprintf("%s (%d bytes)", inspect.Redacted, len(q.Password))
			}
			return inspect.BytesText(q.Password, 64)
		case "will.topic":
			return strconv.Quote(q.Will.Topic)
		case "will.payload":
			return inspect.BytesText(q.Will.Payload, 64)
		}
	case *decode.Connack:
		switch name {
		case "connack_flags":
			return fmt.Sprintf("session present %t", q.SessionPresent)
		case "reason_code":
			return reasonText(q.Version, decode.CONNACK, q.ReasonCode)
		}
	case *decode.Publish:
		switch name {
		case "topic":
			return strconv.Quote(q.Topic)
		case "payload":
			return inspect.BytesText(q.Payload, 64)
		}
	case *decode.Ack:
		if name == "reason_code" {
			return reasonText(q.Version, q.PacketType, q.ReasonCode)
		}
	case *decode.Subscribe:
		if i < len(q.Subscriptions) {
			s := q.Subscriptions[i]
			switch name {
			case "subscription.filter":
				return strconv.Quote(s.Filter)
			case "subscription.options":
				if q.Version == decode.V5 {
					return fmt.Sprintf("qos %d, no local %t, retain as published %t, retain handling %d", s.QoS, s.NoLocal, s.RetainAsPublished, s.RetainHandling)
				}
				return fmt.Sprintf("qos %d", s.QoS)
			}
		}
	case *decode.Suback:
		if name == "reason_code" && i < len(q.ReasonCodes) {
			return reasonText(q.Version, decode.SUBACK, q.ReasonCodes[i])
		}
	case *decode.Unsubscribe:
		if name == "filter" && i < len(q.Filters) {
			return strconv.Quote(q.Filters[i])
		}
	case *decode.Unsuback:
		if name == "reason_code" && i < len(q.ReasonCodes) {
			return reasonText(q.Version, decode.UNSUBACK, q.ReasonCodes[i])
		}
	case *decode.Disconnect:
		if name == "reason_code" {
			return reasonText(q.Version, decode.DISCONNECT, q.ReasonCode)
		}
	case *decode.Auth:
		if name == "reason_code" {
			return reasonText(q.Version, decode.AUTH, q.ReasonCode)
		}
	}
	if name == "packet_id" {
		if id, ok := decode.PacketID(p); ok {
			return strconv.Itoa(int(id))
		}
	}
	if name == "protocol_level" && len(raw) == 1 {
		return strconv.Itoa(int(raw[0]))
	}
	return inspect.HexBytes(raw, 32)
}

// propText formats the i-th property named key.
func propText(ps decode.Properties, key string, i int, showSecrets bool) string {
	for _, pr := range ps {
		if pr.ID.Key() != key {
			continue
		}
		if i > 0 {
			i--
			continue
		}
		if pr.ID == decode.PropAuthData && !showSecrets {
			return fmt.Sprintf("%s (%d bytes)", inspect.Redacted, len(pr.Bin))
		}
		return inspect.PropertyValue(pr)
	}
	return "?"
}

func reasonText(v decode.Version, t decode.Type, c decode.ReasonCode) string {
	return fmt.Sprintf("0x%02X %s", byte(c), decode.ReasonName(v, t, c))
}

// answers finds the packet r answers: the request of an acknowledgement (same packet
// identifier, the other direction, the last before it), the CONNECT of a CONNACK, the
// PINGREQ of a PINGRESP. The caller holds m.mu.
func (m *Model) answers(seq int, r *inspect.PacketRecord) *Jump {
	var want decode.Type
	id, hasID := decode.PacketID(r.Packet)
	switch r.Type() {
	case decode.PUBACK, decode.PUBREC:
		want = decode.PUBLISH
	case decode.PUBREL:
		want = decode.PUBREC
	case decode.PUBCOMP:
		want = decode.PUBREL
	case decode.SUBACK:
		want = decode.SUBSCRIBE
	case decode.UNSUBACK:
		want = decode.UNSUBSCRIBE
	case decode.CONNACK:
		want, hasID = decode.CONNECT, false
	case decode.PINGRESP:
		want, hasID = decode.PINGREQ, false
	default:
		return nil
	}
	c := m.conns[r.Conn]
	if c == nil {
		return nil
	}
	// Search back from r among the connection's packets, at most a window's worth.
	i := sort.SearchInts(c.seqs, seq)
	for k := i - 1; k >= 0 && i-k <= 65536; k-- {
		q := m.pkts[c.seqs[k]-m.base]
		if q.Dir != r.Dir.Peer() || q.Type() != want {
			continue
		}
		if qid, _ := decode.PacketID(q.Packet); hasID && qid != id {
			continue
		}
		return &Jump{Conn: r.Conn, Index: q.Index, Why: fmt.Sprintf("answers %s #%d", want, q.Index)}
	}
	return nil
}

// Columns of the packet list.
type Columns struct {
	Conn, Index, Time, Delta, Dir, Type, ID, Topic, Flags, Size, Reason, Finding string
}

// Columns returns the columns of packet r's row; prev is the packet before it in the list
// (nil for the first), for Δt. The finding column says "fault" when mqscope's proxy made it.
func (m *Model) Columns(r, prev *inspect.PacketRecord) Columns {
	c := columnsOf(r, prev)
	if len(m.FaultsOf(r)) > 0 {
		c.Finding = strings.TrimSpace("fault " + c.Finding)
	}
	return c
}

// columnsOf is Columns without the model (for matching while the model is locked).
func columnsOf(r, prev *inspect.PacketRecord) Columns {
	c := Columns{
		Conn:  strconv.Itoa(r.Conn),
		Index: strconv.Itoa(r.Index),
		Time:  r.Time.UTC().Format("15:04:05.000000"),
		Dir:   r.Dir.Arrow(),
		Type:  r.Type().String(),
		Size:  strconv.Itoa(r.Size()),
	}
	if prev != nil {
		c.Delta = "+" + fmtDelta(r.Time.Sub(prev.Time))
	}
	if id, ok := decode.PacketID(r.Packet); ok && id != 0 {
		c.ID = strconv.Itoa(int(id))
	}
	switch p := r.Packet.(type) {
	case *decode.Publish:
		c.Topic = r.Topic
		if a, ok := p.Properties.Int(decode.PropTopicAlias); ok {
			c.Topic += " [alias " + strconv.Itoa(int(a)) + "]"
		}
		c.Flags = "q" + strconv.Itoa(int(p.QoS))
		if p.Retain {
			c.Flags += " r"
		}
		if p.Dup {
			c.Flags += " d"
		}
	case *decode.Subscribe:
		if len(p.Subscriptions) > 0 {
			c.Topic = p.Subscriptions[0].Filter
		}
	case *decode.Unsubscribe:
		if len(p.Filters) > 0 {
			c.Topic = p.Filters[0]
		}
	}
	if code, ok := decode.ReasonOf(r.Packet); ok {
		c.Reason = fmt.Sprintf("0x%02X", byte(code))
	}
	if l, ok := r.MaxLevel(); ok {
		c.Finding = l.String()
	}
	return c
}

func fmtDelta(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + fmtDelta(-d)
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.3fs", d.Seconds())
}

// dirName names a direction for people.
func dirName(d stream.Dir) string {
	if d == stream.S2C {
		return "server → client"
	}
	return "client → server"
}
