package ui

import (
	"bytes"
	"fmt"
	"math/rand"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// TestConnections: the connection list counts packets, bytes and findings per connection and
// says how each stands.
func TestConnections(t *testing.T) {
	m := fixtureModel(t)
	cs := m.Conns()
	if len(cs) != 2 {
		t.Fatalf("%d connections, want 2", len(cs))
	}
	var bytes1 int64
	for _, r := range fixture(t) {
		if p, ok := r.(*inspect.PacketRecord); ok && p.Conn == 1 {
			bytes1 += int64(len(p.Packet.Info().Raw))
		}
	}
	c := cs[0]
	if c.ID != 1 || c.ClientID != "sensor-7" || c.Packets != 11 || c.Bytes != bytes1 || c.State() != "closed by server" {
		t.Errorf("conn 1: id %d client %q packets %d bytes %d (want %d) state %q", c.ID, c.ClientID, c.Packets, c.Bytes, bytes1, c.State())
	}
	if c.Findings[decode.LevelError] != 2 {
		t.Errorf("conn 1: %d errors, want 2 (the alias over the maximum, the DISCONNECT 0x94)", c.Findings[decode.LevelError])
	}
	if s := cs[1].State(); s != "open" {
		t.Errorf("conn 2 is %q, want open", s)
	}
}

// TestSessionTracking: alias tables with their hits and the in-flight window are followed
// from the packets.
func TestSessionTracking(t *testing.T) {
	m := fixtureModel(t)
	c, _ := m.Conn(1)
	a := c.Aliases[stream.C2S]
	if got := a[1]; got.Topic != "sensors/7/temp" || got.Set != 1 || got.Hits != 1 {
		t.Errorf("alias 1: %+v, want sensors/7/temp set 1 used 1", got)
	}
	if got := a[3]; got.Topic != "sensors/7/bad" || got.Set != 1 {
		t.Errorf("alias 3: %+v", got)
	}
	// PUBLISH 10 was acknowledged, 11 was not.
	if c.InFlight[stream.C2S] != 1 || c.InFlight[stream.S2C] != 0 {
		t.Errorf("in flight %v, want [1 0]", c.InFlight)
	}
	text := m.SessionText(1, m.Now())
	for _, want := range []string{
		"  receive maximum         20           2            2                20",
		"  maximum packet size     -            200          200              no limit",
		"    client → server  1 of 2",
		`        1  "sensors/7/temp"                         set 1, used 1`,
		"topic aliases client → server: 2 of 2",
		"closed by server: server sent DISCONNECT 0x94 Topic Alias invalid",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("session text lacks %q:\n%s", want, text)
		}
	}
}

// TestKeepAliveCountdown: 1.5 times the keep alive from the client's last packet, then
// overdue.
func TestKeepAliveCountdown(t *testing.T) {
	m := fixtureModel(t)
	c, _ := m.Conn(2)
	last := c.LastSeen[stream.C2S]
	if got := m.SessionText(2, last.Add(40*time.Second)); !strings.Contains(got, "keep alive: 5s left before the server may close the connection (1.5 × 30 s") {
		t.Errorf("40 s after the last packet:\n%s", got)
	}
	if got := m.SessionText(2, last.Add(50*time.Second)); !strings.Contains(got, "overdue by 5s") {
		t.Errorf("50 s after the last packet:\n%s", got)
	}
}

// find returns the Seq of packet index of conn.
func find(t *testing.T, m *Model, conn, index int) int {
	t.Helper()
	s, ok := m.Find(conn, index)
	if !ok {
		t.Fatalf("packet %d/%d not found", conn, index)
	}
	return s
}

// nodeWith finds the first node whose text starts with prefix.
func nodeWith(n *Node, prefix string) *Node {
	if strings.HasPrefix(n.Text, prefix) {
		return n
	}
	for _, c := range n.Children {
		if f := nodeWith(c, prefix); f != nil {
			return f
		}
	}
	return nil
}

// TestDetailFields: every field's node locates its own bytes: checked against the encoding of
// the same value, independently of the decoder's locations.
func TestDetailFields(t *testing.T) {
	m := fixtureModel(t)
	d, ok := m.Detail(find(t, m, 1, 7), DetailOptions{})
	if !ok {
		t.Fatal("no detail")
	}
	for _, tc := range []struct {
		node string
		want []byte
	}{
		{`topic: "sensors/7/state"`, append([]byte{0, 15}, "sensors/7/state"...)},
		{"packet_id: 10", []byte{0, 10}},
		{`user_property: "fw"="1.2.3"`, append(append([]byte{0, 2}, "fw"...), append([]byte{0, 5}, "1.2.3"...)...)},
		{`payload: "online"`, []byte("online")},
		{"type_flags: PUBLISH, flags 0x2", []byte{0x32}},
	} {
		n := nodeWith(d.Root, tc.node)
		if n == nil {
			t.Errorf("no node %q", tc.node)
			continue
		}
		if got := d.Raw[n.Start:n.End]; !bytes.Equal(got, tc.want) {
			t.Errorf("%s: bytes % x, want % x", tc.node, got, tc.want)
		}
	}
}

// TestDetailSecrets: the password is redacted in the tree and hidden in the bytes, unless
// secrets are shown.
func TestDetailSecrets(t *testing.T) {
	m := fixtureModel(t)
	seq := find(t, m, 1, 1)
	d, _ := m.Detail(seq, DetailOptions{})
	if nodeWith(d.Root, "password: <redacted> (7 bytes)") == nil {
		t.Error("password not redacted in the tree")
	}
	var all strings.Builder
	for _, l := range d.HexLines(0, 0, false) {
		all.WriteString(l.Text("", "", func(s string) string { return s }))
	}
	if strings.Contains(all.String(), "hunter2") || strings.Contains(all.String(), "75 6e 74 65 72") {
		t.Errorf("the password shows in the bytes:\n%s", all.String())
	}
	if !strings.Contains(all.String(), "** ** ** ** ** ** **") {
		t.Errorf("seven hidden bytes expected:\n%s", all.String())
	}
	d, _ = m.Detail(seq, DetailOptions{ShowSecrets: true})
	all.Reset()
	for _, l := range d.HexLines(0, 0, true) {
		all.WriteString(l.Text("", "", func(s string) string { return s }))
	}
	if nodeWith(d.Root, `password: "hunter2"`) == nil || !strings.Contains(all.String(), "hunter2") {
		t.Error("--show-secrets: the password is not shown")
	}
}

// TestDetailLinks: an acknowledgement links to what it answers, an error to its cause, a
// response to its request; each link leads to the right packet.
func TestDetailLinks(t *testing.T) {
	m := fixtureModel(t)
	for _, tc := range []struct {
		conn, index int
		link        string
		to          int
	}{
		{1, 8, "→ answers PUBLISH #7", 7},
		{1, 2, "→ answers CONNECT #1", 1},
		{1, 4, "→ answers SUBSCRIBE #3", 3},
		{1, 11, "→ caused by PUBLISH #10", 10},
		{2, 4, "→ response to the request #3", 3},
	} {
		d, _ := m.Detail(find(t, m, tc.conn, tc.index), DetailOptions{})
		n := nodeWith(d.Root, tc.link)
		if n == nil || n.Jump == nil {
			t.Errorf("%d/%d: no link %q", tc.conn, tc.index, tc.link)
			continue
		}
		if n.Jump.Conn != tc.conn || n.Jump.Index != tc.to {
			t.Errorf("%d/%d: %q leads to %d/%d, want %d/%d", tc.conn, tc.index, tc.link, n.Jump.Conn, n.Jump.Index, tc.conn, tc.to)
		}
	}
	// A finding's node is marked with its level.
	d, _ := m.Detail(find(t, m, 1, 10), DetailOptions{})
	if n := nodeWith(d.Root, "error MQTT-3.3.2-9"); n == nil || !n.Finding || n.Level != decode.LevelError {
		t.Errorf("the alias finding: %+v", n)
	}
}

// TestViewFilter: the list shows a connection's packets or all, passing the filter; rows map
// to packets both ways; new packets join a filtered list.
func TestViewFilter(t *testing.T) {
	recs := fixture(t)
	m := NewModel(0)
	for _, r := range recs[:10] {
		m.Add(r)
	}
	f, err := inspect.CompileFilter(`type == "PUBLISH"`)
	if err != nil {
		t.Fatal(err)
	}
	m.SetView(0, f)
	before := m.Len()
	for _, r := range recs[10:] {
		m.Add(r)
	}
	want := 0
	for _, r := range recs {
		if p, ok := r.(*inspect.PacketRecord); ok && p.Type() == decode.PUBLISH {
			want++
		}
	}
	if got := m.Len(); got != want || before >= want {
		t.Errorf("%d PUBLISH rows (%d before the rest came), want %d", got, before, want)
	}
	for i := range m.Len() {
		if r := m.Packet(m.At(i)); r.Type() != decode.PUBLISH {
			t.Errorf("row %d is %s", i, r.Type())
		}
	}
	m.SetView(2, f)
	if got := m.Len(); got != 3 {
		t.Errorf("PUBLISH of connection 2: %d rows, want 3", got)
	}
	seq := find(t, m, 2, 4)
	if row, ok := m.Row(seq); !ok || m.At(row) != seq {
		t.Errorf("Row(%d) = %d, %v", seq, row, ok)
	}
	if _, ok := m.Row(find(t, m, 2, 2)); ok {
		t.Error("the CONNACK is not shown, yet Row found it")
	}
	m.SetView(0, nil)
	if m.Len() != m.Total() {
		t.Errorf("no view: %d rows of %d", m.Len(), m.Total())
	}
}

// TestCap: past the cap the oldest packets go, counted; links to them say so; marks on them
// go too.
func TestCap(t *testing.T) {
	recs := fixture(t)
	m := NewModel(8)
	m.Mark(0) // not yet there: ignored
	for i, r := range recs {
		m.Add(r)
		if i == 0 {
			m.Mark(0)
		}
	}
	total := 0
	for _, r := range recs {
		if _, ok := r.(*inspect.PacketRecord); ok {
			total++
		}
	}
	if m.Total() > 8 || m.Total()+m.Dropped() != total {
		t.Errorf("held %d, dropped %d, of %d (cap 8)", m.Total(), m.Dropped(), total)
	}
	if _, ok := m.Find(1, 1); ok {
		t.Error("the first packet is still found")
	}
	if len(m.Marks()) != 0 {
		t.Errorf("marks of dropped packets kept: %v", m.Marks())
	}
	if m.At(0) != m.Dropped() || m.Packet(m.At(0)) == nil {
		t.Errorf("row 0 is Seq %d, want %d", m.At(0), m.Dropped())
	}
}

// TestCapFrees: the records dropped past the cap are no longer held by the model (they
// were, in the array under its list, until an append outgrew it).
func TestCapFrees(t *testing.T) {
	raw, err := decode.Encode(nil, &decode.Pingreq{Base: decode.Base{Version: decode.V5}})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(i int) *inspect.PacketRecord {
		return &inspect.PacketRecord{Time: t0, Conn: 1, Client: "10.0.0.7:50001", Server: "10.0.0.1:1883", Index: i + 1,
			Version: decode.V5, Packet: decode.Decode(raw, decode.V5)}
	}
	m := NewModel(16)
	defer runtime.KeepAlive(m) // the model itself is not garbage
	freed := make(chan struct{})
	first := rec(0)
	runtime.SetFinalizer(first, func(*inspect.PacketRecord) { close(freed) })
	m.Add(first)
	first = nil
	for i := 1; i <= 16; i++ { // the 17th drops the first
		m.Add(rec(i))
	}
	if m.Dropped() != 1 {
		t.Fatalf("dropped %d, want 1", m.Dropped())
	}
	deadline := time.After(10 * time.Second)
	for {
		runtime.GC()
		select {
		case <-freed:
			return
		case <-deadline:
			t.Fatal("the dropped record is still reachable after garbage collections")
		case <-time.After(10 * time.Millisecond): // the finalizer's goroutine may not have run yet
		}
	}
}

// TestNextFinding: n and N go from finding to finding, wrapping around.
func TestNextFinding(t *testing.T) {
	m := fixtureModel(t)
	r10, r11 := find(t, m, 1, 10), find(t, m, 1, 11)
	i := m.Next(-1, true, HasFinding)
	if m.At(i) != r10 {
		t.Fatalf("first finding at Seq %d, want %d", m.At(i), r10)
	}
	if j := m.Next(i, true, HasFinding); m.At(j) != r11 {
		t.Errorf("next finding at Seq %d, want %d", m.At(j), r11)
	}
	if j := m.Next(i, false, HasFinding); m.At(j) != r11 {
		t.Errorf("previous finding (wrapping) at Seq %d, want %d", m.At(j), r11)
	}
	m.SetView(2, nil)
	if j := m.Next(0, true, HasFinding); j != -1 {
		t.Errorf("connection 2 has no finding, Next gave row %d", j)
	}
}

// TestTopics: the topic tree counts per level, keeps the last two payloads, and diffs them.
func TestTopics(t *testing.T) {
	m := fixtureModel(t)
	got := map[string]TopicLine{}
	for _, l := range m.Topics() {
		got[l.Path] = l
	}
	if s := got["sensors"]; s.Total != 5 || s.Count != 0 || s.Depth != 0 {
		t.Errorf("sensors: %+v", s)
	}
	temp := got["sensors/7/temp"]
	if temp.Count != 2 || temp.Depth != 2 {
		t.Fatalf("sensors/7/temp: %+v", temp)
	}
	d := Diff(PayloadText(temp.Prev), PayloadText(temp.Last))
	var sb strings.Builder
	for _, l := range d {
		sb.WriteString(string(l.Op) + l.Text + "\n")
	}
	want := " {\n-  \"t\": 21.5,\n+  \"t\": 21.7,\n   \"unit\": \"C\"\n }\n"
	if sb.String() != want {
		t.Errorf("diff:\n%s\nwant:\n%s", sb.String(), want)
	}
}

// TestDiff: the line diff keeps common lines in order.
func TestDiff(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"a\nb\nc", "a\nc", " a -b  c"},
		{"a", "b", "-a +b"},
		{"x\ny", "x\ny\nz", " x  y +z"},
		{"", "", " "},
	} {
		var parts []string
		for _, l := range Diff(tc.a, tc.b) {
			parts = append(parts, string(l.Op)+l.Text)
		}
		if got := strings.Join(parts, " "); got != tc.want {
			t.Errorf("Diff(%q, %q) = %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestHexSearch: hex and text patterns are found in a packet's bytes.
func TestHexSearch(t *testing.T) {
	m := fixtureModel(t)
	d, _ := m.Detail(find(t, m, 1, 7), DetailOptions{})
	at := bytes.Index(d.Raw, []byte("online"))
	for _, pat := range []string{"online", "6f 6e 6c", "6F6E6C69", "0x6f6e"} {
		got, n := d.FindBytes(pat, 0)
		if got != at {
			t.Errorf("FindBytes(%q) = %d, want %d", pat, got, at)
		}
		if want := (len(strings.ReplaceAll(strings.TrimPrefix(pat, "0x"), " ", "")) + 1) / 2; pat != "online" && n != want {
			t.Errorf("FindBytes(%q) stands for %d bytes, want %d", pat, n, want)
		}
	}
	if got, n := d.FindBytes("online", at+1); got != -1 || n != len("online") {
		t.Errorf("found a second time at %d", got)
	}
}

// TestFaults: a fault the proxy applied shows on the packet it sent (list, tree) and in the
// session's list; one that dropped its frame only in the list.
func TestFaults(t *testing.T) {
	m := fixtureModel(t)
	orig := &decode.Publish{Topic: "sensors/7/state"}
	m.Add(&inspect.FaultRecord{Time: t0, Conn: 1, Rule: "oversize", Did: "grew the PUBLISH to 201 bytes", Used: "max_packet_size=200",
		Before: []byte{0x30, 0x02, 0, 0}, Original: orig, Index: 9})
	m.Add(&inspect.FaultRecord{Time: t0, Conn: 1, Rule: "drop", Did: "dropped PUBACK"})
	r := m.Packet(find(t, m, 1, 9))
	if got := m.Columns(r, nil).Finding; got != "fault" {
		t.Errorf("finding column %q, want fault", got)
	}
	d, _ := m.Detail(find(t, m, 1, 9), DetailOptions{})
	if n := nodeWith(d.Root, "fault oversize applied by mqscope's proxy: grew the PUBLISH to 201 bytes (max_packet_size=200)"); n == nil || len(n.Children) != 1 {
		t.Errorf("no fault node in the tree of #9")
	}
	text := m.SessionText(1, m.Now())
	for _, want := range []string{"faults applied by mqscope's proxy: 2", "oversize packet #9: grew", "drop dropped the frame: dropped PUBACK"} {
		if !strings.Contains(text, want) {
			t.Errorf("session lacks %q:\n%s", want, text)
		}
	}
}

// blockedWriter holds the first record until release is closed.
type blockedWriter struct {
	m       *Model
	release chan struct{}
}

func (w blockedWriter) Write(r inspect.Record) error { <-w.release; w.m.Add(r); return nil }
func (w blockedWriter) Close() error                 { return nil }

// countDrops counts what Model.Drops passes on.
type countDrops struct{ n int }

func (c *countDrops) Dropped(n int)     { c.n += n }
func (c *countDrops) EventsDropped(int) {}

// TestDropsSaid: the records an Output feeding the model had no room for are counted in the
// header's text, and passed on.
func TestDropsSaid(t *testing.T) {
	m := NewModel(0)
	w := blockedWriter{m, make(chan struct{})}
	next := &countDrops{}
	out := inspect.NewOutput(w, nil, nil, m.Drops(next), 1)
	var recs []inspect.Record
	for _, r := range fixture(t) {
		if _, ok := r.(*inspect.PacketRecord); ok && len(recs) < 3 {
			recs = append(recs, r)
		}
	}
	for _, r := range recs { // one in the writer at most, one in the queue: one dropped at least
		out.Emit(r)
	}
	close(w.release)
	out.Close()
	lost := len(recs) - m.Total()
	if lost < 1 || next.n != lost {
		t.Fatalf("%d of %d records reached the model, %d drops passed on", m.Total(), len(recs), next.n)
	}
	if got, want := m.LostText(), fmt.Sprintf("%d records lost (the screens fell behind)", lost); got != want {
		t.Errorf("LostText() = %q, want %q", got, want)
	}
}

// TestTopicLevels: each level of the topic tree has the path up to it, empty levels
// included (a leading, trailing or doubled "/").
func TestTopicLevels(t *testing.T) {
	m := NewModel(0)
	for i, topic := range []string{"a/b", "/x", "a//b", "a/b/", "a/b"} {
		m.Add(&inspect.PacketRecord{Conn: 1, Index: i + 1, Topic: topic, Packet: publish(topic, 0, 0, "")})
	}
	var got []string
	for _, l := range m.Topics() {
		got = append(got, fmt.Sprintf("%d %q %q %d/%d", l.Depth, l.Name, l.Path, l.Count, l.Total))
	}
	want := []string{
		`0 "" "" 0/1`, `1 "x" "/x" 1/1`,
		`0 "a" "a" 0/4`, `1 "" "a/" 0/1`, `2 "b" "a//b" 1/1`, `1 "b" "a/b" 2/3`, `2 "" "a/b/" 1/1`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("topic tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// lcsLen is the length of the longest common subsequence of a and b.
func lcsLen(a, b []string) int {
	prev := make([]int, len(b)+1)
	for i := len(a) - 1; i >= 0; i-- {
		cur := make([]int, len(b)+1)
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				cur[j] = prev[j+1] + 1
			} else {
				cur[j] = max(prev[j], cur[j+1])
			}
		}
		prev = cur
	}
	return prev[0]
}

// TestDiffMinimal: on random texts the diff gives back both texts and keeps as many lines as
// they have in common; a long text with a line changed in the middle is diffed, not replaced
// whole.
func TestDiffMinimal(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	lines := func() []string {
		l := make([]string, rng.Intn(30))
		for i := range l {
			l[i] = string(rune('a' + rng.Intn(4)))
		}
		return l
	}
	for range 3000 {
		a, b := lines(), lines()
		var ga, gb []string
		common := 0
		for _, d := range Diff(strings.Join(a, "\n"), strings.Join(b, "\n")) {
			if d.Op != '+' {
				ga = append(ga, d.Text)
			}
			if d.Op != '-' {
				gb = append(gb, d.Text)
			}
			if d.Op == ' ' {
				common++
			}
		}
		sa, sb := strings.Split(strings.Join(a, "\n"), "\n"), strings.Split(strings.Join(b, "\n"), "\n")
		if !slices.Equal(ga, sa) || !slices.Equal(gb, sb) || common != lcsLen(sa, sb) {
			t.Fatalf("Diff(%q, %q): gives %q and %q, %d common lines, want %d", sa, sb, ga, gb, common, lcsLen(sa, sb))
		}
	}
	var long []string
	for i := range 10000 {
		long = append(long, fmt.Sprint("line ", i))
	}
	changed := slices.Clone(long)
	changed[5000] = "changed"
	d := Diff(strings.Join(long, "\n"), strings.Join(changed, "\n"))
	if len(d) != 10001 || d[5000] != (DiffLine{'-', "line 5000"}) || d[5001] != (DiffLine{'+', "changed"}) {
		t.Errorf("a long text with one line changed: %d lines, %+v %+v", len(d), d[5000], d[5001])
	}
}
