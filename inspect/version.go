package inspect

import (
	"fmt"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// Where a connection's protocol version came from (ConnState.VersionFrom).
const (
	VersionFromConnect = "connect" // the protocol level of its CONNECT
	VersionFromOption  = "option"  // Options.Version (--version): no CONNECT was seen
	VersionFromPackets = "packets" // no CONNECT was seen: a packet reads as one version only
	// "": not decided: no CONNECT was seen and every packet so far reads as either version;
	// packets are decoded as MQTT 5.
)

// versionText says how the version of a connection was decided, for the summary.
func versionText(v decode.Version, from string) string {
	switch from {
	case VersionFromConnect:
		return fmt.Sprintf("MQTT %s", v)
	case VersionFromOption:
		return fmt.Sprintf("MQTT %s (from --version: no CONNECT seen)", v)
	case VersionFromPackets:
		return fmt.Sprintf("MQTT %s (no CONNECT seen: told by the packets)", v)
	}
	return "MQTT version unknown (no CONNECT seen; every packet reads as 3.1.1 and as 5: decoded as 5)"
}

// detectVersion decodes a frame of a connection whose version is not known (its CONNECT was
// not seen) under both MQTT 5 and 3.1.1, and keeps the reading the evidence supports. A frame
// that breaks the standard under one version and reads cleanly under the other decides the
// version for the connection (a CONNACK of 2 bytes has no property length, so it is 3.1.1; a
// PUBACK with a reason code is 5), with a note saying so; a PUBLISH only chooses its own
// reading, since its payload may happen to look like properties. Frames that read cleanly
// both ways decide nothing.
func (c *Conn) detectVersion(dir stream.Dir, frame []byte) decode.Packet {
	topics := &c.streams[dir&1].topics
	p5 := decode.DecodeWith(frame, decode.V5, decode.Options{Lean: true, Topics: topics})
	p4 := decode.DecodeWith(frame, decode.V311, decode.Options{Lean: true, Topics: topics})
	bad5, bad4 := p5.Info().Problems, p4.Info().Problems
	switch {
	case len(bad5) == 0 && len(bad4) == 0:
		return p5
	case len(bad5) == 0:
		if hasError(p4) {
			c.decideVersion(p5, decode.V5, bad4[0])
		}
		return p5
	case len(bad4) == 0:
		if hasError(p5) {
			c.decideVersion(p4, decode.V311, bad5[0])
		}
		return p4
	case hasMalformed(p5) && !hasMalformed(p4):
		c.version = decode.V311
		return p4
	}
	c.version = decode.V5
	return p5
}

func hasError(p decode.Packet) bool {
	for _, pr := range p.Info().Problems {
		if pr.Level == decode.LevelError {
			return true
		}
	}
	return false
}

// decideVersion fixes the connection's version to v from packet p, which does not read as the
// other version because of problem not.
func (c *Conn) decideVersion(p decode.Packet, v decode.Version, not *decode.Problem) {
	c.version = v
	if p.Type() == decode.PUBLISH {
		return
	}
	c.versionKnown = true
	c.st.Version, c.st.VersionFrom = v, VersionFromPackets
	other := decode.V311
	if v == decode.V311 {
		other = decode.V5
	}
	c.pending = append(c.pending, Note{Level: decode.LevelInfo, Rule: RuleVersion,
		Text: fmt.Sprintf("no CONNECT was seen: this %s tells the version, MQTT %s (as MQTT %s it breaks the standard: %s)", p.Type(), v, other, not.Message)})
}
