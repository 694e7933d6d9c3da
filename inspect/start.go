package inspect

import (
	"slices"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// startSeen decides, at the first whole frame of a direction, whether a connection marked
// mid-stream (its TCP handshake was not captured) holds its MQTT start all the same: a client
// stream that begins, at its first captured byte, with a CONNECT is the whole session, since
// CONNECT is always a client's first packet. Its limits are then checked as if the handshake
// had been captured. If the server's stream then does not begin where it should (bytes before
// its first frame were lost), the negotiation is unknown after all and the connection goes
// back to mid-stream.
func (c *Conn) startSeen(dir stream.Dir, frame []byte) {
	s := &c.streams[dir]
	if c.counts[dir].total > 0 {
		return
	}
	typ := decode.Type(frame[0] >> 4)
	switch {
	case dir == stream.C2S && c.counts[stream.S2C].total == 0 && !s.skipped && typ == decode.CONNECT:
		c.st.MidStream = false
		c.st.Phase = "connecting"
		c.startFromConnect = true
		c.pending = slices.DeleteFunc(c.pending, func(n Note) bool { return n.Rule == RuleMidStream })
	case dir == stream.S2C && c.startFromConnect:
		c.startFromConnect = false
		if !s.skipped && (typ == decode.CONNACK || typ == decode.AUTH) {
			return
		}
		c.st.MidStream = true
		c.st.Phase = "connected"
		c.lost[stream.S2C] = true
		c.pending = append(c.pending, Note{Level: decode.LevelInfo, Rule: RuleMidStream,
			Text: "the capture has the client's CONNECT but not the start of the server's stream: the negotiation is unknown, so limits are not checked"})
	}
}

// firstAtStart is for a direction looking for its first frame from its first captured byte:
// whether that byte begins a frame to take as it is, even if it breaks rules, instead of
// passing it over as a resynchronisation would. That is a CONNECT at the start of the client's
// stream of a connection marked mid-stream (CONNECT is a client's first packet: with a protocol
// name that is not MQTT it is shown with its finding, not dropped), and a CONNACK or AUTH, the
// only packets a server may send first, at the start of the server's stream after such a
// CONNECT. more is true when too few bytes came to tell.
func (c *Conn) firstAtStart(dir stream.Dir, s *dirStream) (yes, more bool) {
	if c.counts[dir].total > 0 || s.skipped || s.fr.Dropped() > 0 {
		return false, false
	}
	var want func(decode.Type) bool
	switch {
	case dir == stream.C2S && c.st.MidStream && c.counts[stream.S2C].total == 0:
		want = func(t decode.Type) bool { return t == decode.CONNECT }
	case dir == stream.S2C && c.startFromConnect:
		want = func(t decode.Type) bool { return t == decode.CONNACK || t == decode.AUTH }
	default:
		return false, false
	}
	h, ok, err := decode.ParseHeader(s.fr.Pending())
	switch {
	case err != nil:
		return false, false
	case !ok:
		return false, true
	}
	return want(h.Type) && plausibleHeader(h, c.version), false
}
