package capture

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// TestIdleCompacts: connections quiet for longer than Options.Idle are told so once per quiet
// spell, the next record of each says it, and nothing else of the output changes (aliases,
// packets in flight and cause links after the quiet spell read as without it), with one worker
// and with several.
func TestIdleCompacts(t *testing.T) {
	c2sA, s2cA, c2sB, s2cB := v5Session(t)
	quiet := 10 * time.Minute
	name := file(t, func(sw *pcapng.StreamWriter) {
		for i := 0; i < 3; i++ {
			s, _ := sw.Open(netip.AddrPortFrom(cli.Addr(), uint16(40000+i)), srv, ms(i))
			must(t, s.Write(stream.C2S, ms(i+1), c2sA))
			must(t, s.Write(stream.S2C, ms(i+2), s2cA))
			// Connection 2 stays busy (a PINGREQ a minute): never quiet for 5 minutes.
			if i == 2 {
				for m := 1; m <= 10; m++ {
					at := ms(i + 2).Add(time.Duration(m) * time.Minute)
					must(t, s.Write(stream.C2S, at, enc(t, &decode.Pingreq{})))
					must(t, s.Write(stream.S2C, at.Add(time.Millisecond), enc(t, &decode.Pingresp{})))
				}
			}
			must(t, s.Write(stream.C2S, ms(i+3).Add(quiet), c2sB))
			must(t, s.Write(stream.S2C, ms(i+4).Add(quiet), s2cB))
			must(t, s.Close(stream.C2S, ms(i+5).Add(quiet)))
		}
	})
	idleRE := regexp.MustCompile(`\{"level":"info","rule":"MQSCOPE-IDLE"[^}]*\},?`)
	for _, workers := range []int{1, 3} {
		plain := runJSONWith(t, workers, nil, Options{}, name)
		compact := runJSONWith(t, workers, nil, Options{Idle: 5 * time.Minute}, name)
		if n := strings.Count(compact, `"rule":"MQSCOPE-IDLE"`); n != 2 {
			t.Errorf("workers %d: %d idle notes, want 2 (connections 1 and 2 quiet for 10 minutes, 3 busy):\n%s", workers, n, compact)
		}
		// Each idle note is on the first PUBLISH after the quiet spell, counted in the close
		// record; without them, the packet and session records are the same.
		var with, without []string
		for _, l := range strings.Split(compact, "\n") {
			switch {
			case strings.Contains(l, `"kind":"close"`):
				if strings.Contains(l, `"client":"192.0.2.10:4000`) && !strings.Contains(l, `"MQSCOPE-IDLE":1`) && !strings.Contains(l, `40002"`) {
					t.Errorf("workers %d: close record without the idle finding: %s", workers, l)
				}
				continue
			case strings.Contains(l, "MQSCOPE-IDLE") && (!strings.Contains(l, `"type":"PUBLISH"`) || !strings.Contains(l, "10m0s of capture time")):
				t.Errorf("workers %d: the idle note is not on the first PUBLISH after the quiet spell: %s", workers, l)
			}
			with = append(with, regexp.MustCompile(`,"notes":\[\]`).ReplaceAllString(idleRE.ReplaceAllString(l, ""), ""))
		}
		for _, l := range strings.Split(plain, "\n") {
			if !strings.Contains(l, `"kind":"close"`) {
				without = append(without, l)
			}
		}
		if a, b := strings.Join(with, "\n"), strings.Join(without, "\n"); a != b {
			t.Errorf("workers %d: compaction changed more than its note:\n--- without\n%s\n--- with\n%s", workers, b, a)
		}
		if !strings.Contains(plain, `"topic":"up/temperature"`) || strings.Contains(plain, "MQSCOPE-IDLE") {
			t.Fatalf("workers %d: unexpected plain output:\n%s", workers, plain)
		}
	}
}
