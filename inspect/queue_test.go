package inspect

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// dropCount counts what an Output and a Hub report lost.
type dropCount struct{ records, events int }

func (d *dropCount) Dropped(n int)       { d.records += n }
func (d *dropCount) EventsDropped(n int) { d.events += n }

// TestEventsFilterOffPath: a subscriber whose filter takes long (here: forever, until released)
// holds up neither the output nor another subscriber, and what it cannot take is dropped,
// counted, and reported in its stream.
func TestEventsFilterOffPath(t *testing.T) {
	m := &dropCount{}
	hub := NewHub(JSONOptions{})
	w := &chanWriter{got: make(chan Record, 4096)}
	out := NewOutput(w, nil, hub, m, 0)
	defer out.Close()

	slow := hub.Subscribe(nil)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	slow.fs.match = func(*PacketRecord) bool {
		entered <- struct{}{}
		<-release
		return true
	}
	fast := hub.Subscribe(nil)
	fastLines := make(chan []byte, 4096)
	go func() {
		for r := range fast.C {
			fastLines <- fast.Line(nil, r)
		}
	}()
	var slowLines []byte
	slowDone := make(chan struct{})
	slowRead := make(chan struct{}, 2*subQueue+200)
	go func() {
		defer close(slowDone)
		for r := range slow.C {
			slowLines = slow.Line(slowLines, r)
			slowRead <- struct{}{}
		}
	}()

	n := subQueue + 100 // more than the slow subscriber's queue holds
	timeout := time.After(10 * time.Second)
	// Each record is written by the output and read by the fast subscriber before the next is
	// emitted (so that the fast one need not race the emitter), all while the slow filter holds
	// the first record.
	for i := range n {
		out.Emit(&PacketRecord{Conn: 1, Index: i + 1, Packet: &decode.Pingreq{}})
		if i == 0 {
			select {
			case <-entered: // the slow filter holds its first record
			case <-timeout:
				t.Fatal("the slow subscriber never took its first record")
			}
		}
		select {
		case <-w.got:
		case <-timeout:
			t.Fatalf("output wrote %d of %d records while a subscriber's filter ran", i, n)
		}
		select {
		case line := <-fastLines:
			if !strings.Contains(string(line), `"index":`+strconv.Itoa(i+1)+`,`) {
				t.Fatalf("fast subscriber's line %d: %s", i+1, line)
			}
		case <-timeout:
			t.Fatalf("fast subscriber got %d of %d records while another's filter ran", i, n)
		}
	}
	// The slow one holds one record in its filter and subQueue in its queue: the rest are lost.
	lost := uint64(n - 1 - subQueue)
	if d := slow.Dropped(); d != lost {
		t.Errorf("slow subscriber dropped %d, want %d", d, lost)
	}
	if m.events != int(lost) {
		t.Errorf("%d event drops counted, want %d", m.events, lost)
	}
	go func() {
		for range entered {
		}
	}()
	close(release)
	for range subQueue + 1 {
		<-slowRead
	}
	// Publish one more: it comes after the notice of what was lost before it.
	out.Emit(&PacketRecord{Conn: 1, Index: n + 1, Packet: &decode.Pingreq{}})
	<-w.got
	<-slowRead
	hub.Unsubscribe(slow)
	<-slowDone
	lines := strings.Split(strings.TrimSuffix(string(slowLines), "\n"), "\n")
	if len(lines) != subQueue+3 {
		t.Fatalf("slow subscriber got %d lines, want %d records and a drop notice", len(lines), subQueue+2)
	}
	if want := `{"kind":"dropped","records":` + strconv.FormatUint(lost, 10) + `}`; lines[subQueue+1] != want {
		t.Errorf("line %d: %s, want %s", subQueue+2, lines[subQueue+1], want)
	}
	if !strings.Contains(lines[subQueue+2], `"index":`+strconv.Itoa(n+1)+`,`) {
		t.Errorf("last line: %s, want record %d", lines[subQueue+2], n+1)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(lines[subQueue+1]), &ev); err != nil {
		t.Errorf("drop notice is not JSON: %v", err)
	}
}

// chanWriter is an Writer passing records to a channel.
type chanWriter struct {
	got chan Record
}

func (w *chanWriter) Write(r Record) error { w.got <- r; return nil }
func (w *chanWriter) Close() error         { return nil }

// BenchmarkOutputCostlySubscriber measures how long the output takes to write a 500 KB PUBLISH
// while an event stream subscriber has a filter that takes about a second on it: the
// subscriber's filter runs on its own goroutine, so the output should not wait for it.
//
//	go test -run '^$' -bench OutputCostlySubscriber -benchtime 20x ./inspect/
func BenchmarkOutputCostlySubscriber(b *testing.B) {
	pr := bigPublishRecord(b, 500_000)
	f, err := CompileFilter(`payload matches "(.*a){20}z"`)
	if err != nil {
		b.Fatal(err)
	}
	hub := NewHub(JSONOptions{})
	w := &chanWriter{got: make(chan Record, 1)}
	out := NewOutput(w, nil, hub, nil, 0)
	sub := hub.Subscribe(f)
	go func() {
		for e := range sub.C {
			sub.Line(nil, e)
		}
	}()
	defer out.Close()
	for b.Loop() {
		out.Emit(pr)
		<-w.got
	}
}

// bigPublishRecord returns the record of an MQTT 5 PUBLISH with a payload of n bytes of text.
func bigPublishRecord(b *testing.B, n int) *PacketRecord {
	v5 := decode.Base{Version: decode.V5}
	c := NewConn(1, "10.0.0.1:50000", "10.0.0.2:1883", Options{MaxFrame: 1 << 20})
	con, _ := decode.Encode(nil, &decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "big"})
	ack, _ := decode.Encode(nil, &decode.Connack{Base: v5})
	pub, _ := decode.Encode(nil, &decode.Publish{Base: v5, Topic: "t", Payload: bytes.Repeat([]byte("abcdefghij"), n/10)})
	now := time.Now()
	c.Feed(stream.C2S, now, con)
	c.Feed(stream.S2C, now, ack)
	for _, r := range c.Feed(stream.C2S, now, pub) {
		if pr, ok := r.(*PacketRecord); ok {
			return pr
		}
	}
	b.Fatal("no PUBLISH record")
	return nil
}
