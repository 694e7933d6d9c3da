package inspect

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// add appends a note to the record.
func (r *PacketRecord) add(l decode.Level, rule string, reason decode.ReasonCode, text string) *Note {
	r.Notes = append(r.Notes, Note{Level: l, Rule: rule, Reason: reason, Text: text})
	return &r.Notes[len(r.Notes)-1]
}

// addWhy appends a note with a short phrase for cause links ("over the 200-byte Maximum Packet
// Size granted in CONNACK").
func (r *PacketRecord) addWhy(l decode.Level, rule string, reason decode.ReasonCode, why, text string) {
	n := r.add(l, rule, reason, text)
	n.why = why
}

// known reports whether the limits the sender of d must obey are known: from CONNACK for the
// client, from CONNECT for the server.
func (c *Conn) known(d stream.Dir) bool {
	if c.st.MidStream {
		return false
	}
	if d == stream.C2S {
		return c.connack != nil && c.connect != nil
	}
	return c.connect != nil
}

// limitSource names where the limits of direction d come from.
func limitSource(d stream.Dir) string {
	if d == stream.C2S {
		return "granted in CONNACK"
	}
	return "set by the client in CONNECT"
}

// keepAlive returns the keep alive in force, in seconds.
func (c *Conn) keepAlive() int {
	if c.connack != nil {
		return c.st.Effective.KeepAlive
	}
	if c.connect != nil {
		return c.st.Requested.KeepAlive
	}
	return 0
}

func (c *Conn) refused() bool {
	return c.connack != nil && c.st.Granted.ReasonCode != 0
}

// connectRead reports whether the CONNECT was seen and decoded up to and including part:
// what it did not reach is unknown, not empty (decode.Connect.Unread).
func (c *Conn) connectRead(part decode.ConnectPart) bool {
	return c.connect != nil && c.connect.Packet.(*decode.Connect).Read(part)
}

// startLost reports whether the capture lost the start of the connection as far as direction
// d's packets are concerned: the CONNECT (bytes of the client were lost before any CONNECT),
// or, for the server, its CONNACK. Which packets may come when is then unknown.
func (c *Conn) startLost(d stream.Dir) bool {
	return c.connect == nil && c.lost[stream.C2S] || d == stream.S2C && c.connack == nil && c.lost[stream.S2C]
}

// checkOrder checks which packets may come when.
func (c *Conn) checkOrder(r *PacketRecord) {
	t := r.Type()
	if c.streams[r.Dir].dead {
		r.add(decode.LevelWarning, RuleAfterDisconnect, decode.ProtocolError,
			fmt.Sprintf("%s after the %s's own DISCONNECT #%d: it must close the connection after sending DISCONNECT", t, r.Dir.Sender().String(), c.disconnect[r.Dir].Index))
	}
	if c.st.MidStream || c.startLost(r.Dir) {
		return
	}
	if r.Dir == stream.C2S {
		switch {
		case t == decode.CONNECT && c.connect != nil:
			r.add(decode.LevelError, "MQTT-3.1.0-2", decode.ProtocolError, fmt.Sprintf("second CONNECT on this connection (the first is #%d): the server must close the connection", c.connect.Index))
		case t != decode.CONNECT && c.connect == nil && c.counts[stream.C2S].total == 0:
			r.add(decode.LevelError, "MQTT-3.1.0-1", decode.ProtocolError, fmt.Sprintf("the client's first packet is %s; it must be CONNECT", t))
		case c.connack == nil && c.connect != nil && c.st.Requested.AuthenticationMethod != nil &&
			t != decode.AUTH && t != decode.DISCONNECT && t != decode.CONNECT:
			r.add(decode.LevelError, "MQTT-3.1.2-30", decode.ProtocolError, fmt.Sprintf("%s before CONNACK, though CONNECT started enhanced authentication: only AUTH or DISCONNECT may be sent until CONNACK", t))
		}
		return
	}
	switch {
	case t == decode.CONNACK && c.connack != nil:
		r.add(decode.LevelError, "MQTT-3.2.0-2", decode.ProtocolError, fmt.Sprintf("second CONNACK (the first is #%d)", c.connack.Index))
	case c.refused() && t != decode.CONNACK:
		r.add(decode.LevelError, "MQTT-3.2.2-7", decode.ProtocolError, fmt.Sprintf("%s after the CONNACK #%d that refused the connection: the server must close it", t, c.connack.Index))
	case c.connack == nil && t == decode.DISCONNECT:
		r.add(decode.LevelError, "MQTT-3.14.0-1", decode.ProtocolError, "DISCONNECT from the server before a successful CONNACK: the server must send CONNACK with the reason code instead")
	case c.connack == nil && t != decode.CONNACK && t != decode.AUTH:
		r.add(decode.LevelError, "MQTT-3.2.0-1", decode.ProtocolError, fmt.Sprintf("%s from the server before CONNACK: only AUTH may come before it", t))
	}
}

// checkKeepAlive reports packets that arrive after the client was silent for too long.
func (c *Conn) checkKeepAlive(r *PacketRecord) {
	ka := c.keepAlive()
	if ka <= 0 || c.lastC2S.IsZero() || c.kaFlagged || c.st.MidStream {
		return
	}
	gap := elapsed(r.Time, c.lastC2S)
	period := time.Duration(ka) * time.Second
	// A client pings at its keep alive, give or take scheduling: allow a tenth, at least 1 s.
	if r.Dir == stream.C2S && gap > period+max(time.Second, period/10) && r.Type() != decode.CONNECT {
		r.add(decode.LevelWarning, "MQTT-3.1.2-20", 0, fmt.Sprintf("the client sent nothing for %.1f s, longer than its %d s keep alive: it must send PINGREQ in time", gap.Seconds(), ka))
	}
	if gap > period*3/2 {
		c.kaFlagged = true
		if r.Type() == decode.DISCONNECT && r.Dir == stream.S2C {
			return // the server did close; the DISCONNECT's cause link says why
		}
		r.addWhy(decode.LevelWarning, "MQTT-3.1.2-22", decode.KeepAliveTimeout, fmt.Sprintf("%.1f s after the client's previous packet", gap.Seconds()),
			fmt.Sprintf("%.1f s since the client's previous packet, more than 1.5 × the %d s keep alive: the server should have closed the connection", gap.Seconds(), ka))
	}
}

func (c *Conn) onConnect(r *PacketRecord, q *decode.Connect) {
	if c.connect != nil {
		return
	}
	c.connect = r
	c.st.Requested = requestedOf(q)
	c.st.Version = q.Version
	c.st.ClientID = q.ClientID
	c.st.Effective = effectiveOf(c.st.Requested, Granted{}, q.Version)
	c.profileConnect(r, q)
	if c.opts.Sessions != nil && q.ClientID != "" {
		if prev, ok := c.opts.Sessions.claim(c.sessionKey(), c.st.ID, r.Index, r.Time); ok {
			c.tookFrom = prev.conn
			r.add(decode.LevelInfo, RuleTakeover, 0, fmt.Sprintf("Client Identifier %q is in use on connection %d to this server: the server must close that one (session takeover, DISCONNECT 0x8E in MQTT 5)", q.ClientID, prev.conn))
		}
	}
}

func (c *Conn) onConnack(r *PacketRecord, q *decode.Connack) {
	if c.connack != nil {
		return
	}
	c.connack = r
	g := grantedOf(q)
	c.st.Granted = g
	c.st.Negotiated = true
	c.st.Effective = effectiveOf(c.st.Requested, g, c.version)
	c.st.ClientID = c.st.Effective.ClientID
	if q.ReasonCode != 0 {
		c.st.Phase = "refused"
		c.refusedNote(r, q)
		return
	}
	c.st.Phase = "connected"
	if c.tookFrom != 0 && q.SessionPresent {
		r.add(decode.LevelInfo, RuleTakeover, 0, fmt.Sprintf("Session Present: this connection resumes the session that connection %d held", c.tookFrom))
	}
	if q.Version != decode.V5 {
		return
	}
	req := c.st.Requested
	e := c.st.Effective
	if c.connect != nil {
		idRead := c.connectRead(decode.PartClientID)
		if idRead && req.ClientID == "" && g.AssignedClientIdentifier == nil {
			r.add(decode.LevelError, "MQTT-3.2.2-16", decode.ProtocolError, "the client sent an empty Client Identifier but CONNACK has no Assigned Client Identifier")
		}
		if idRead && req.ClientID != "" && g.AssignedClientIdentifier != nil {
			r.add(decode.LevelInfo, RuleAssignedID, 0, fmt.Sprintf("the server assigned Client Identifier %q though the client sent %q", *g.AssignedClientIdentifier, req.ClientID))
		}
		if c.connectRead(decode.PartProperties) && g.ResponseInformation != nil && (req.RequestResponseInformation == nil || *req.RequestResponseInformation == 0) {
			r.add(decode.LevelError, "MQTT-3.1.2-28", decode.ProtocolError, "CONNACK carries Response Information the client did not ask for (Request Response Information was not 1)")
		}
		if g.ServerKeepAlive != nil && c.connectRead(decode.PartKeepAlive) && int(*g.ServerKeepAlive) != req.KeepAlive {
			r.add(decode.LevelInfo, RuleServerKeepAlive, 0, fmt.Sprintf("Server Keep Alive %d s replaces the client's keep alive %d s; the client must use %d s", *g.ServerKeepAlive, req.KeepAlive, *g.ServerKeepAlive))
		}
		if g.SessionExpiryInterval != nil {
			asked := uint32(0)
			if req.SessionExpiryInterval != nil {
				asked = *req.SessionExpiryInterval
			}
			if asked != *g.SessionExpiryInterval {
				r.add(decode.LevelInfo, RuleSessionGranted, 0, fmt.Sprintf("the server set Session Expiry Interval %s; the client asked for %s", seconds(*g.SessionExpiryInterval), seconds(asked)))
			}
		}
		if w := req.Will; w != nil {
			if w.QoS > e.C2S.MaximumQoS {
				r.add(decode.LevelError, "MQTT-3.2.2-12", decode.QoSNotSupported, fmt.Sprintf("the Will has QoS %d but the server supports at most QoS %d: it must refuse the connection (CONNACK 0x9B)", w.QoS, e.C2S.MaximumQoS))
			}
			if w.Retain && !e.C2S.RetainAvailable {
				r.add(decode.LevelError, "MQTT-3.2.2-13", decode.RetainNotSupported, "the Will has Retain 1 but the server does not support retained messages: it must refuse the connection (CONNACK 0x9A)")
			}
		}
		if m := req.AuthenticationMethod; m != nil && (g.AuthenticationMethod == nil || *g.AuthenticationMethod != *m) {
			got := "none"
			if g.AuthenticationMethod != nil {
				got = fmt.Sprintf("%q", *g.AuthenticationMethod)
			}
			r.add(decode.LevelError, "MQTT-4.12.0-5", decode.ProtocolError, fmt.Sprintf("CONNACK's Authentication Method is %s; CONNECT's is %q", got, *m))
		}
	}
	if g.ServerReference != nil {
		r.add(decode.LevelInfo, RuleServerReference, 0, fmt.Sprintf("the server suggests another server: %q", *g.ServerReference))
	}
	if c.authSteps > 0 && req.AuthenticationMethod != nil {
		r.add(decode.LevelInfo, RuleAuthExchange, 0, fmt.Sprintf("enhanced authentication %q completed after %s, %s after CONNECT",
			*req.AuthenticationMethod, Plural(c.authSteps, "AUTH packet"), r.Time.Sub(c.connect.Time).Round(time.Microsecond)))
	}
	c.profileConnack(r)
}

// refusedNote explains a CONNACK that refuses the connection and links it to the CONNECT.
func (c *Conn) refusedNote(r *PacketRecord, q *decode.Connack) {
	name := decode.ReasonName(q.Version, decode.CONNACK, q.ReasonCode)
	text := fmt.Sprintf("the server refused the connection: 0x%02X %s", byte(q.ReasonCode), name)
	if s, ok := q.Properties.String(decode.PropReasonString); ok {
		text += fmt.Sprintf(" (%q)", s)
	}
	n := r.add(decode.LevelError, RuleConnackRefused, 0, text)
	if c.connect == nil {
		return
	}
	cn := c.connect.Packet.(*decode.Connect)
	why := ""
	rc := q.ReasonCode
	if q.Version != decode.V5 {
		// MQTT 3.1.1 return codes, mapped to the MQTT 5 reason they mean.
		switch byte(rc) {
		case 1:
			rc = decode.UnsupportedProtocol
		case 2:
			rc = decode.ClientIDNotValid
		case 3:
			rc = decode.ServerUnavailable
		case 4:
			rc = decode.BadUserNameOrPassword
		case 5:
			rc = decode.NotAuthorized
		}
	}
	switch rc {
	case decode.BadUserNameOrPassword, decode.NotAuthorized:
		user := "no user name"
		if cn.HasUsername {
			user = fmt.Sprintf("user name %q", cn.Username)
		}
		pw := "no password"
		if cn.HasPassword {
			pw = "password " + c.secret(cn.Password)
		}
		why = user + ", " + pw
	case decode.UnsupportedProtocol:
		why = fmt.Sprintf("protocol %q level %d", cn.ProtocolName, cn.ProtocolLevel)
	case decode.ClientIDNotValid:
		if cn.Read(decode.PartClientID) {
			why = fmt.Sprintf("Client Identifier %q (%d characters)", cn.ClientID, utf8.RuneCountInString(cn.ClientID))
		}
	case decode.BadAuthenticationMethod:
		m, _ := cn.Properties.String(decode.PropAuthMethod)
		why = fmt.Sprintf("Authentication Method %q", m)
	case decode.PacketTooLarge:
		why = fmt.Sprintf("%d bytes", cn.Size())
	case decode.QoSNotSupported:
		if cn.Will != nil {
			why = fmt.Sprintf("Will QoS %d", cn.Will.QoS)
		}
	case decode.RetainNotSupported:
		if cn.Will != nil {
			why = fmt.Sprintf("Will Retain %v", cn.Will.Retain)
		}
	case decode.PayloadFormatInvalid:
		why = "its Will payload is not UTF-8 though its Payload Format Indicator is 1"
	case decode.TopicNameInvalid:
		if cn.Will != nil {
			why = fmt.Sprintf("Will Topic %q", cn.Will.Topic)
		}
	}
	if why == "" {
		for _, nn := range c.connect.Notes {
			if nn.Level == decode.LevelError {
				why = nn.Text
				break
			}
		}
	}
	n.Cause = &CauseRef{Index: c.connect.Index, Type: decode.CONNECT, Summary: summarize(c.connect, why)}
}

// secret shows a password or authentication data only with ShowSecrets.
func (c *Conn) secret(b []byte) string {
	if c.opts.ShowSecrets {
		return fmt.Sprintf("%q", b)
	}
	return "(redacted)"
}

func (c *Conn) onPublish(r *PacketRecord, q *decode.Publish) {
	d := r.Dir
	r.Topic = q.Topic
	v5 := r.Version == decode.V5
	if v5 {
		c.resolveAlias(r, q)
	}
	if d == stream.C2S && c.known(stream.C2S) {
		lim := &c.st.Effective.C2S
		if int(q.QoS) > lim.MaximumQoS && q.QoS < 3 {
			r.addWhy(decode.LevelError, "MQTT-3.2.2-11", decode.QoSNotSupported, fmt.Sprintf("QoS %d, above the Maximum QoS %d granted in CONNACK", q.QoS, lim.MaximumQoS),
				fmt.Sprintf("PUBLISH at QoS %d, but the server's CONNACK allows at most QoS %d", q.QoS, lim.MaximumQoS))
		}
		if q.Retain && !lim.RetainAvailable {
			r.addWhy(decode.LevelError, "MQTT-3.2.2-14", decode.RetainNotSupported, "RETAIN 1, though CONNACK said Retain Available 0",
				"PUBLISH with RETAIN 1, but the server's CONNACK said Retain Available 0")
		}
	}
	if v5 && d == stream.C2S && q.Properties.Has(decode.PropSubscriptionID) {
		r.add(decode.LevelError, "MQTT-3.3.4-6", decode.ProtocolError, "a client's PUBLISH must not carry a Subscription Identifier")
	}
	if q.QoS == 1 || q.QoS == 2 {
		c.publishFlow(r, q)
	}
	if v5 {
		c.requestResponse(r, q)
	}
	if d == stream.C2S {
		c.profilePublish(r, q)
	}
}

// resolveAlias applies the sender's Topic Alias table to a PUBLISH.
func (c *Conn) resolveAlias(r *PacketRecord, q *decode.Publish) {
	alias, has := q.Properties.TopicAlias()
	if !has || alias == 0 {
		return // no alias, or alias 0, which the decoder reports (MQTT-3.3.2-8)
	}
	d := r.Dir
	if c.known(d) {
		max := c.st.Effective.Limit(d).TopicAliasMaximum
		if int(alias) > max {
			var rule, text string
			switch {
			case d == stream.C2S && max == 0:
				rule, text = "MQTT-3.2.2-18", fmt.Sprintf("Topic Alias %d, but the server's CONNACK allows no aliases (Topic Alias Maximum absent or 0)", alias)
			case d == stream.C2S:
				rule, text = "MQTT-3.3.2-9", fmt.Sprintf("Topic Alias %d is above the Topic Alias Maximum %d granted in CONNACK", alias, max)
			case max == 0:
				rule, text = "MQTT-3.1.2-27", fmt.Sprintf("Topic Alias %d, but the client's CONNECT allows no aliases (Topic Alias Maximum absent or 0)", alias)
			default:
				rule, text = "MQTT-3.3.2-11", fmt.Sprintf("Topic Alias %d is above the Topic Alias Maximum %d the client set in CONNECT", alias, max)
			}
			r.addWhy(decode.LevelError, rule, decode.TopicAliasInvalid, fmt.Sprintf("Topic Alias %d, above the maximum %d %s", alias, max, limitSource(d)), text+"; the receiver answers DISCONNECT 0x94")
			return
		}
	}
	if c.aliases[d] == nil {
		c.aliases[d] = map[uint16]string{}
	}
	m := c.aliases[d]
	if q.Topic != "" {
		if old, ok := m[alias]; ok && old != q.Topic {
			r.add(decode.LevelInfo, RuleAliasRemap, 0, fmt.Sprintf("Topic Alias %d now stands for %q (was %q)", alias, q.Topic, old))
		}
		m[alias] = q.Topic
		return
	}
	if t, ok := m[alias]; ok {
		r.Topic = t
		return
	}
	if c.st.MidStream {
		r.add(decode.LevelWarning, RuleAliasUnknown, 0, fmt.Sprintf("Topic Alias %d was not mapped since the capture began; its topic is unknown", alias))
		return
	}
	r.addWhy(decode.LevelError, RuleAliasUnknown, decode.ProtocolError, fmt.Sprintf("empty topic with Topic Alias %d, never mapped on this connection", alias),
		fmt.Sprintf("empty topic with Topic Alias %d, which was never mapped on this connection (aliases start empty on every connection): a protocol error", alias))
}

// publishFlow tracks a QoS 1 or 2 PUBLISH against the receiver's Receive Maximum and the
// Packet Identifiers in use.
func (c *Conn) publishFlow(r *PacketRecord, q *decode.Publish) {
	d := r.Dir
	if q.PacketID == 0 {
		return
	}
	if c.flight[d] == nil {
		c.flight[d] = map[uint16]inflight{}
	}
	m := c.flight[d]
	if e, ok := m[q.PacketID]; ok {
		if q.Dup && (e.state == flightAck || e.state == flightRec) {
			r.add(decode.LevelInfo, RuleRetransmit, 0, fmt.Sprintf("retransmission of PUBLISH #%d (Packet Identifier %d)", e.rec.Index, q.PacketID))
			return
		}
		rule := "MQTT-2.2.1-3"
		if d == stream.S2C {
			rule = "MQTT-2.2.1-4"
		}
		r.addWhy(decode.LevelError, rule, decode.PacketIDInUse, fmt.Sprintf("Packet Identifier %d still in use by %s #%d", q.PacketID, e.rec.Type(), e.rec.Index),
			fmt.Sprintf("Packet Identifier %d is still in use by %s #%d (%s); a new PUBLISH needs an unused one", q.PacketID, e.rec.Type(), e.rec.Index, stateText(e.state)))
		return
	}
	if q.Dup && !c.st.MidStream {
		why := "it was never sent on this connection"
		if c.st.Granted.SessionPresent {
			why = "a message from the resumed session, sent on an earlier connection"
		}
		r.add(decode.LevelInfo, RuleDupUnknown, 0, fmt.Sprintf("DUP 1 but Packet Identifier %d is not in flight: %s", q.PacketID, why))
	}
	if c.known(d) {
		max := c.st.Effective.Limit(d).ReceiveMaximum
		if c.inflight[d] >= max {
			rule := "MQTT-3.3.4-7"
			if d == stream.S2C {
				rule = "MQTT-3.3.4-9"
			}
			r.addWhy(decode.LevelError, rule, decode.ReceiveMaximumExceeded,
				fmt.Sprintf("QoS %d with %d already unacknowledged, over the Receive Maximum %d %s", q.QoS, c.inflight[d], max, limitSource(d)),
				fmt.Sprintf("QoS %d PUBLISH while %d are unacknowledged: over the Receive Maximum %d %s; the receiver answers DISCONNECT 0x93", q.QoS, c.inflight[d], max, limitSource(d)))
		}
	}
	st := flightAck
	if q.QoS == 2 {
		st = flightRec
	}
	m[q.PacketID] = inflight{rec: r, qos: q.QoS, state: st}
	c.keepLent(r, d, q.PacketID)
	c.inflight[d]++
}

func stateText(s byte) string {
	switch s {
	case flightAck:
		return "waiting for PUBACK"
	case flightRec:
		return "waiting for PUBREC"
	case flightRel:
		return "PUBREC received, waiting for PUBREL"
	case flightComp:
		return "PUBREL sent, waiting for PUBCOMP"
	case flightSub:
		return "waiting for SUBACK"
	}
	return "waiting for UNSUBACK"
}

// unknown gives the level of a finding about an identifier not in flight, and what to add to
// its text: only info when what it answers may exist unseen, because the session was resumed,
// the start was not captured, or the capture lost bytes from the senders in dirs.
func (c *Conn) unknown(dirs ...stream.Dir) (decode.Level, string) {
	for _, d := range dirs {
		if c.lost[d&1] {
			return decode.LevelInfo, fmt.Sprintf(" (the capture lost bytes from the %s: it may have been there)", d.Sender().String())
		}
	}
	if c.st.MidStream || c.st.Granted.SessionPresent {
		return decode.LevelInfo, ""
	}
	return decode.LevelWarning, ""
}

func (c *Conn) onAck(r *PacketRecord, q *decode.Ack) {
	d := r.Dir
	id := q.PacketID
	pubDir := d.Peer() // the direction of the PUBLISH this acknowledges
	if q.PacketType == decode.PUBREL {
		pubDir = d
	}
	var e *inflight
	if x, ok := c.flight[pubDir][id]; ok {
		e = &x
	}
	if e != nil && (e.state == flightSub || e.state == flightUnsub) {
		e = nil
	}
	done := func() {
		delete(c.flight[pubDir], id)
		c.inflight[pubDir]--
		c.acked = e.rec
	}
	switch q.PacketType {
	case decode.PUBACK:
		switch {
		case e == nil:
			l, why := c.unknown(pubDir)
			r.add(l, RuleAckUnknown, 0, fmt.Sprintf("PUBACK for Packet Identifier %d, which no QoS 1 PUBLISH from the %s is waiting for%s", id, pubDir.Sender().String(), why))
		case e.state != flightAck:
			r.add(decode.LevelError, RuleAckWrongType, decode.ProtocolError, fmt.Sprintf("PUBACK for PUBLISH #%d, which is QoS 2 (%s)", e.rec.Index, stateText(e.state)))
			done()
		default:
			done()
		}
	case decode.PUBREC:
		switch {
		case e == nil:
			l, why := c.unknown(pubDir)
			r.add(l, RuleAckUnknown, 0, fmt.Sprintf("PUBREC for Packet Identifier %d, which no QoS 2 PUBLISH from the %s is waiting for%s", id, pubDir.Sender().String(), why))
		case e.state == flightAck:
			r.add(decode.LevelError, RuleAckWrongType, decode.ProtocolError, fmt.Sprintf("PUBREC for PUBLISH #%d, which is QoS 1 and needs PUBACK", e.rec.Index))
			done()
		case e.state == flightRec:
			if q.ReasonCode.IsError() {
				done()
			} else {
				e.state = flightRel
				c.flight[pubDir][id] = *e
			}
		}
	case decode.PUBREL:
		switch {
		case e == nil:
			l, why := c.unknown(d, d.Peer())
			r.addWhy(l, RulePubrelUnknown, decode.PacketIDNotFound, fmt.Sprintf("PUBREL for Packet Identifier %d, with no PUBREC%s", id, why),
				fmt.Sprintf("PUBREL for Packet Identifier %d, which has no QoS 2 PUBLISH waiting for release; the receiver answers PUBCOMP 0x92%s", id, why))
		case e.state == flightRec || e.state == flightAck:
			r.add(decode.LevelError, RuleAckWrongType, decode.ProtocolError, fmt.Sprintf("PUBREL for PUBLISH #%d before its PUBREC", e.rec.Index))
		case e.state == flightRel:
			e.state = flightComp
			c.flight[pubDir][id] = *e
		}
	case decode.PUBCOMP:
		switch {
		case e == nil:
			l, why := c.unknown(pubDir, d)
			r.add(l, RuleAckUnknown, 0, fmt.Sprintf("PUBCOMP for Packet Identifier %d, which no PUBREL is waiting for%s", id, why))
		case e.state != flightComp:
			r.add(decode.LevelError, RuleAckWrongType, decode.ProtocolError, fmt.Sprintf("PUBCOMP for PUBLISH #%d before its PUBREL (%s)", e.rec.Index, stateText(e.state)))
			done()
		default:
			done()
		}
	}
	if !q.HasReason || !q.ReasonCode.IsError() {
		return
	}
	name := q.ReasonCode.Name(q.PacketType)
	text := fmt.Sprintf("%s 0x%02X %s", q.PacketType, byte(q.ReasonCode), name)
	if s, ok := q.Properties.String(decode.PropReasonString); ok {
		text += fmt.Sprintf(" (%q)", s)
	}
	n := r.add(decode.LevelError, RuleAckError, 0, text)
	if e != nil {
		n.Cause = &CauseRef{Index: e.rec.Index, Type: e.rec.Type(), Summary: summarize(e.rec, c.ackWhy(e.rec, q.ReasonCode))}
		return
	}
	// PUBREL or PUBCOMP 0x92: the packet this answers is the peer's last one with that id.
	c.eachRecent(d.Peer(), func(f *fact) bool {
		if f.pid != id {
			return false
		}
		why := ""
		for _, cn := range f.notes {
			if cn.reason == q.ReasonCode {
				why = cn.why
				break
			}
		}
		n.Cause = f.ref(why)
		return true
	})
}

// ackWhy explains an error reason code in terms of the packet it answers.
func (c *Conn) ackWhy(p *PacketRecord, rc decode.ReasonCode) string {
	for _, n := range p.Notes {
		if n.Reason == rc {
			return n.whyText()
		}
	}
	pub, ok := p.Packet.(*decode.Publish)
	if !ok {
		return ""
	}
	if why, ok := c.ackLimitWhy(p, pub, rc); ok {
		return why
	}
	switch rc {
	case decode.NotAuthorized:
		return fmt.Sprintf("not authorized to publish to %q", p.Topic)
	case decode.TopicNameInvalid:
		return fmt.Sprintf("topic %q refused", p.Topic)
	case decode.PayloadFormatInvalid:
		return fmt.Sprintf("payload of %d bytes with Payload Format Indicator 1", len(pub.Payload))
	case decode.QuotaExceeded:
		return "over a quota of the server"
	case decode.PacketIDInUse:
		return fmt.Sprintf("Packet Identifier %d already in use at the receiver", pub.PacketID)
	}
	return fmt.Sprintf("topic %q, QoS %d", p.Topic, pub.QoS)
}

func (c *Conn) onSubscribe(r *PacketRecord, q *decode.Subscribe) {
	c.trackID(r, q.PacketID, flightSub)
	c.profileSubscribe(r, q)
	if !c.known(stream.C2S) || r.Version != decode.V5 {
		return
	}
	lim := &c.st.Effective.C2S
	for _, s := range q.Subscriptions {
		if !lim.WildcardSubscriptionAvailable && strings.ContainsAny(s.Filter, "+#") {
			r.addWhy(decode.LevelError, RuleWildcardUnavail, decode.WildcardSubsNotSupported, fmt.Sprintf("wildcard filter %q, though CONNACK said Wildcard Subscription Available 0", s.Filter),
				fmt.Sprintf("wildcard filter %q, but the server's CONNACK said Wildcard Subscription Available 0", s.Filter))
		}
		if !lim.SharedSubscriptionAvailable && strings.HasPrefix(s.Filter, "$share/") {
			r.addWhy(decode.LevelError, RuleSharedUnavail, decode.SharedSubsNotSupported, fmt.Sprintf("shared subscription %q, though CONNACK said Shared Subscription Available 0", s.Filter),
				fmt.Sprintf("shared subscription %q, but the server's CONNACK said Shared Subscription Available 0", s.Filter))
		}
	}
	if !lim.SubscriptionIdentifiersAvailable && q.Properties.Has(decode.PropSubscriptionID) {
		r.addWhy(decode.LevelError, RuleSubIDUnavail, decode.SubscriptionIDsUnsupported, "a Subscription Identifier, though CONNACK said Subscription Identifiers Available 0",
			"Subscription Identifier, but the server's CONNACK said Subscription Identifiers Available 0")
	}
}

func (c *Conn) onUnsubscribe(r *PacketRecord, q *decode.Unsubscribe) {
	c.trackID(r, q.PacketID, flightUnsub)
}

// trackID records a SUBSCRIBE or UNSUBSCRIBE waiting for its acknowledgement.
func (c *Conn) trackID(r *PacketRecord, id uint16, st byte) {
	if id == 0 {
		return
	}
	d := r.Dir
	if c.flight[d] == nil {
		c.flight[d] = map[uint16]inflight{}
	}
	if e, ok := c.flight[d][id]; ok {
		rule := "MQTT-2.2.1-3"
		if d == stream.S2C {
			rule = "MQTT-2.2.1-4"
		}
		r.addWhy(decode.LevelError, rule, decode.PacketIDInUse, fmt.Sprintf("Packet Identifier %d still in use by %s #%d", id, e.rec.Type(), e.rec.Index),
			fmt.Sprintf("Packet Identifier %d is still in use by %s #%d (%s)", id, e.rec.Type(), e.rec.Index, stateText(e.state)))
		if e.state != flightSub && e.state != flightUnsub {
			return // keep the PUBLISH in flight
		}
	}
	c.flight[d][id] = inflight{rec: r, state: st}
	c.keepLent(r, d, id)
}

// keepLent notes a record kept in flight at d, id, for Detach, when its bytes are lent.
func (c *Conn) keepLent(r *PacketRecord, d stream.Dir, id uint16) {
	if r.lent {
		c.lent = append(c.lent, flightKey{d, id})
	}
}

// onSuback checks a SUBACK or UNSUBACK against its request.
func (c *Conn) onSuback(r *PacketRecord, id uint16, codes []decode.ReasonCode, t decode.Type) {
	want := flightSub
	if t == decode.UNSUBACK {
		want = flightUnsub
	}
	var e *inflight
	if x, ok := c.flight[stream.C2S][id]; ok && x.state == want {
		e = &x
		delete(c.flight[stream.C2S], id)
		c.acked = x.rec // its flow is over: frame hands it back once this one is inspected
	}
	if e == nil {
		req := "SUBSCRIBE"
		if t == decode.UNSUBACK {
			req = "UNSUBSCRIBE"
		}
		l, why := c.unknown(stream.C2S)
		r.add(l, RuleAckUnknown, 0, fmt.Sprintf("%s for Packet Identifier %d, which no %s is waiting for%s", t, id, req, why))
		return
	}
	var filters []string
	var qos []byte
	switch q := e.rec.Packet.(type) {
	case *decode.Subscribe:
		for _, s := range q.Subscriptions {
			filters = append(filters, s.Filter)
			qos = append(qos, s.QoS)
		}
	case *decode.Unsubscribe:
		filters = q.Filters
	}
	if codes == nil {
		return // MQTT 3.1.1 UNSUBACK
	}
	if len(codes) != len(filters) {
		r.add(decode.LevelError, RuleSubackCount, decode.ProtocolError, fmt.Sprintf("%s for the %s of %s #%d", Plural(len(codes), "reason code"), Plural(len(filters), "filter"), e.rec.Type(), e.rec.Index))
	}
	for i, rc := range codes {
		if i >= len(filters) {
			break
		}
		if t == decode.SUBACK && !rc.IsError() && byte(rc) > qos[i] {
			r.add(decode.LevelWarning, RuleSubackQoS, 0, fmt.Sprintf("granted QoS %d for %q, which asked for QoS %d", rc, filters[i], qos[i]))
		}
		if !rc.IsError() {
			continue
		}
		why := fmt.Sprintf("filter %q", filters[i])
		for _, n := range e.rec.Notes {
			if n.Reason == rc && strings.Contains(n.Text, filters[i]) {
				why = n.whyText()
				break
			}
		}
		n := r.add(decode.LevelError, RuleSubackError, 0, fmt.Sprintf("%q refused: 0x%02X %s", filters[i], byte(rc), decode.ReasonName(r.Version, t, rc)))
		n.Cause = &CauseRef{Index: e.rec.Index, Type: e.rec.Type(), Summary: summarize(e.rec, why)}
	}
}

func (c *Conn) onDisconnect(r *PacketRecord, q *decode.Disconnect) {
	d := r.Dir
	if c.disconnect[d] == nil {
		c.disconnect[d] = r
	}
	c.streams[d].dead = true
	if c.st.Phase != "refused" {
		c.st.Phase = "disconnecting"
	}
	if r.Version != decode.V5 {
		return
	}
	if v, ok := q.Properties.Int(decode.PropSessionExpiry); ok {
		if d == stream.S2C {
			r.add(decode.LevelError, "MQTT-3.14.2-2", decode.ProtocolError, "the server must not send a Session Expiry Interval in DISCONNECT")
		} else if c.connect != nil {
			asked := c.st.Requested.SessionExpiryInterval
			if v != 0 && (asked == nil || *asked == 0) {
				r.addWhy(decode.LevelError, RuleSessionExpiry0, decode.ProtocolError, fmt.Sprintf("Session Expiry Interval %d s, though CONNECT had 0", v),
					fmt.Sprintf("DISCONNECT sets Session Expiry Interval %d s, but CONNECT had 0: a protocol error, the server answers DISCONNECT 0x82", v))
			} else {
				c.st.Effective.SessionExpiryInterval = v
			}
		}
	}
	rc := q.ReasonCode
	switch s := rc.DisconnectSender(); {
	case s == decode.ByClient && d == stream.S2C, s == decode.ByServer && d == stream.C2S:
		r.add(decode.LevelError, "MQTT-3.14.2-1", decode.ProtocolError, fmt.Sprintf("DISCONNECT reason code 0x%02X %s may only be sent by the %s", byte(rc), rc.Name(decode.DISCONNECT), d.Peer().Sender().String()))
	}
	if rc == decode.SessionTakenOver {
		n := r.add(decode.LevelWarning, RuleTakenOver, 0, fmt.Sprintf("another connection with Client Identifier %q took over this session", c.st.ClientID))
		if o, ok := c.takenOverBy(); ok {
			n.Text = fmt.Sprintf("connection %d connected with Client Identifier %q and took over this session", o.conn, c.st.Requested.ClientID)
			n.Cause = &CauseRef{Conn: o.conn, Index: o.index, Type: decode.CONNECT, Summary: fmt.Sprintf("CONNECT #%d of connection %d at %s", o.index, o.conn, o.t.Format("15:04:05.000000"))}
		}
	}
	if s, ok := q.Properties.String(decode.PropServerReference); ok {
		r.add(decode.LevelInfo, RuleServerReference, 0, fmt.Sprintf("the server suggests another server: %q", s))
	}
	if !rc.IsError() {
		return
	}
	text := fmt.Sprintf("the %s closed the connection: 0x%02X %s", d.Sender().String(), byte(rc), rc.Name(decode.DISCONNECT))
	if r.ByProxy {
		text = fmt.Sprintf("mqscope's proxy closed the connection, in the %s's place: 0x%02X %s", d.Sender().String(), byte(rc), rc.Name(decode.DISCONNECT))
	}
	if s, ok := q.Properties.String(decode.PropReasonString); ok {
		text += fmt.Sprintf(" (%q)", s)
	}
	n := r.add(decode.LevelError, RuleDisconnectError, 0, text)
	if !r.ByProxy { // the proxy's reasons are its own (shutdown, the control API), not a packet
		n.Cause = c.causeOf(d, rc, r.Time)
	}
}

func (c *Conn) onAuth(r *PacketRecord, q *decode.Auth) {
	d := r.Dir
	c.authSteps++
	method, has := q.Properties.String(decode.PropAuthMethod)
	if !has {
		r.add(decode.LevelError, RuleAuthNoMethod, decode.ProtocolError, "AUTH without an Authentication Method")
	}
	if c.connect == nil || c.st.MidStream {
		return
	}
	want := c.st.Requested.AuthenticationMethod
	if want == nil {
		rule := "MQTT-4.12.0-7"
		if d == stream.S2C {
			rule = "MQTT-4.12.0-6"
		}
		r.add(decode.LevelError, rule, decode.ProtocolError, fmt.Sprintf("AUTH from the %s, though CONNECT started no enhanced authentication", d.Sender().String()))
		return
	}
	if has && method != *want {
		rule := "MQTT-4.12.0-5"
		if c.connack != nil && d == stream.C2S {
			rule = "MQTT-4.12.1-1"
		}
		r.add(decode.LevelError, rule, decode.ProtocolError, fmt.Sprintf("AUTH with Authentication Method %q; CONNECT's is %q", method, *want))
	}
	if c.connack == nil {
		if d == stream.S2C && q.ReasonCode != decode.ContinueAuthentication {
			r.add(decode.LevelError, "MQTT-4.12.0-2", decode.ProtocolError, fmt.Sprintf("the server's AUTH before CONNACK has reason 0x%02X; it must be 0x18 Continue authentication", byte(q.ReasonCode)))
		}
		if d == stream.C2S && q.ReasonCode != decode.ContinueAuthentication {
			r.add(decode.LevelError, "MQTT-4.12.0-3", decode.ProtocolError, fmt.Sprintf("the client's AUTH before CONNACK has reason 0x%02X; it must be 0x18 Continue authentication", byte(q.ReasonCode)))
		}
	}
}

// checkSize checks a packet against the Maximum Packet Size its receiver set.
func (c *Conn) checkSize(r *PacketRecord) {
	d := r.Dir
	if !c.known(d) {
		return
	}
	max := c.st.Effective.Limit(d).MaximumPacketSize
	size := r.Size()
	if max <= 0 || size <= max {
		return
	}
	t := r.Type()
	rule := "MQTT-3.2.2-15"
	if d == stream.S2C {
		rule = "MQTT-3.1.2-24"
	}
	text := fmt.Sprintf("%s of %d bytes is over the %d-byte Maximum Packet Size %s", t, size, max, limitSource(d))
	if p, ok := r.Packet.(*decode.Publish); ok && len(p.Payload) <= max && r.Fault == "" {
		if d == stream.C2S {
			text += fmt.Sprintf(" (its payload alone is %d bytes: the limit counts the whole packet, fixed header included)", len(p.Payload))
		} else {
			text += fmt.Sprintf(" (its payload alone is %d bytes: this broker seems to count only the payload, not the whole packet)", len(p.Payload))
		}
	}
	switch {
	case r.Fault != "":
		// Not the peer's doing: say who made it so, and what the receiver should answer.
		text += fmt.Sprintf(", made so by mqscope's fault `%s`; the %s answers DISCONNECT 0x95", r.Fault, d.Peer().Sender())
	case d == stream.C2S:
		text += "; the server answers DISCONNECT 0x95"
	default:
		text += "; the server must not send it"
	}
	r.addWhy(decode.LevelError, rule, decode.PacketTooLarge, fmt.Sprintf("over the %d-byte Maximum Packet Size %s", max, limitSource(d)), text)
}

// checkProblemInfo enforces Request Problem Information 0.
func (c *Conn) checkProblemInfo(r *PacketRecord) {
	if r.Dir != stream.S2C || c.connect == nil || r.Version != decode.V5 {
		return
	}
	rpi := c.st.Requested.RequestProblemInformation
	if rpi == nil || *rpi != 0 {
		return
	}
	switch r.Type() {
	case decode.PUBLISH, decode.CONNACK, decode.DISCONNECT:
		return
	}
	ps := decode.PropertiesOf(r.Packet)
	if ps.Has(decode.PropReasonString) || ps.Has(decode.PropUserProperty) {
		r.add(decode.LevelError, "MQTT-3.1.2-29", decode.ProtocolError, fmt.Sprintf("%s carries a Reason String or User Property, though the client set Request Problem Information 0", r.Type()))
	}
}

// requestResponse pairs requests (Response Topic and Correlation Data) with their responses.
func (c *Conn) requestResponse(r *PacketRecord, q *decode.Publish) {
	corr, _ := q.Properties.Binary(decode.PropCorrelationData)
	if r.Topic != "" && len(c.requests) > 0 {
		key := r.Topic + "\x00" + string(corr)
		if req, ok := c.requests[key]; ok {
			delete(c.requests, key)
			r.Response = &ResponseRef{Request: req.index, Latency: elapsed(r.Time, req.t)}
		}
	}
	if rt, ok := q.Properties.String(decode.PropResponseTopic); ok {
		if c.requests == nil {
			c.requests = map[string]request{}
		}
		if len(c.requests) >= 1024 {
			clear(c.requests) // bound the memory of requests never answered
		}
		c.requests[rt+"\x00"+string(corr)] = request{index: r.Index, t: r.Time}
	}
}

// summarize describes a packet for a cause link: "PUBLISH #41, 300 bytes, why".
func summarize(p *PacketRecord, why string) string {
	s := fmt.Sprintf("%s #%d, %d bytes", p.Type(), p.Index, p.Size())
	if why != "" {
		s += ", " + why
	}
	return s
}

func seconds(v uint32) string {
	if v == 0xFFFFFFFF {
		return "never (0xFFFFFFFF)"
	}
	return fmt.Sprintf("%d s", v)
}
