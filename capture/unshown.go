package capture

import "github.com/mqscope/mqscope/stream"

// Why a connection to an MQTT port was not reported (Stats.Unshown).
const (
	whyNotUpgrade     = "HTTP that is not a WebSocket upgrade to MQTT"
	whyUpgradeRefused = "a WebSocket upgrade the server did not accept"
	whyHTTPGap        = "bytes of its HTTP upgrade were not captured"
	whyTooLong        = "32 KB without a complete HTTP upgrade or TLS ClientHello"
)

// drop leaves the connection out from now on, and counts it in Stats.Unshown with why if it is
// to an MQTT port: what the port promised, the capture could not show.
func (s *tcpConn) drop(why string) {
	s.kind = kindOther
	s.half[0].pre, s.half[1].pre = nil, nil
	if s.a.isPort(s.addr[s.rd(stream.S2C)].Port()) == nil {
		return
	}
	if s.a.stats.Unshown == nil {
		s.a.stats.Unshown = map[string]int{}
	}
	s.a.stats.Unshown[why]++
}
