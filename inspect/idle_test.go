package inspect

import (
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// TestFactRing: the ring keeps the last recentLen facts newest first, grows as facts come, and
// keepLast leaves the newest one, after which order holds again.
func TestFactRing(t *testing.T) {
	var r factRing
	push := func(from, to int) {
		for i := from; i < to; i++ {
			r.push().index = int32(i)
		}
	}
	order := func() (got []int32) {
		for i := range r.buf {
			got = append(got, r.newest(i).index)
		}
		return got
	}
	if r.last() != nil {
		t.Fatal("an empty ring has a last fact")
	}
	push(0, 3)
	if got := order(); len(got) != 3 || got[0] != 2 || got[2] != 0 {
		t.Fatalf("after 3: %v", got)
	}
	push(3, 40)
	got := order()
	if len(got) != recentLen || got[0] != 39 || got[recentLen-1] != 40-recentLen {
		t.Fatalf("after 40: %v", got)
	}
	r.keepLast()
	if got := order(); len(got) != 1 || got[0] != 39 {
		t.Fatalf("after keepLast: %v", got)
	}
	push(40, 60)
	if got := order(); len(got) != recentLen || got[0] != 59 || got[recentLen-1] != 60-recentLen {
		t.Fatalf("after 60: %v", got)
	}
}

// TestCompactMidFrame: a connection compacted with half a PUBLISH read and a QoS 1 PUBLISH in
// flight reads on as if nothing happened, but for the note on its next packet.
func TestCompactMidFrame(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, props(ip(decode.PropTopicAliasMaximum, 5), ip(decode.PropMaximumPacketSize, 100)))
	s.c2s(publish("a/b", 1, 7, "x", ip(decode.PropTopicAlias, 3)))
	half := enc(t, publish("", 0, 0, "second", ip(decode.PropTopicAlias, 3)))
	s.now = s.now.Add(time.Millisecond)
	if recs := s.c.Feed(stream.C2S, s.now, half[:4]); len(recs) != 0 {
		t.Fatalf("half a frame gave %d records", len(recs))
	}
	last := s.now
	s.wait(10 * time.Minute)
	s.c.Compact(s.now, last)
	recs := s.c.Feed(stream.C2S, s.now, half[4:])
	if len(recs) != 1 {
		t.Fatalf("the rest of the frame gave %d records", len(recs))
	}
	r := recs[0].(*PacketRecord)
	if r.Topic != "a/b" {
		t.Errorf("alias 3 resolved to %q after compaction, want a/b", r.Topic)
	}
	n := note(t, r, RuleIdle)
	if n.Level != decode.LevelInfo || !strings.Contains(n.Text, "10m0s of capture time") || !strings.Contains(n.Text, "before #3") {
		t.Errorf("idle note: %+v", n)
	}
	ack := s.s2c(ack(decode.PUBACK, 7, 0))
	clean(t, ack) // the PUBLISH in flight is still known
	big := s.c2s(publish("a/b", 0, 0, string(make([]byte, 120))))
	note(t, big, "MQTT-3.2.2-15") // the granted Maximum Packet Size still holds
	noNote(t, big, RuleIdle)      // said once
}
