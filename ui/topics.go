package ui

import (
	"slices"
	"strings"

	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/inspect/payload"
)

// Topic is one level of the topic tree: the messages published on the topic that ends here,
// and the levels below it.
type Topic struct {
	Name  string // this level
	Path  string // the whole topic
	Count int    // PUBLISH packets on exactly this topic
	Total int    // on this topic and every one below
	// Last and Prev are the last two PUBLISH packets on the topic (nil when fewer).
	Last, Prev *inspect.PacketRecord
	children   map[string]*Topic
}

// UnknownTopic is the name of the topic of a PUBLISH whose alias was never mapped.
const UnknownTopic = "(topic unknown: alias not mapped)"

func newTopic(name string) *Topic { return &Topic{Name: name, children: map[string]*Topic{}} }

func (t *Topic) add(r *inspect.PacketRecord) {
	name := r.Topic
	if name == "" {
		name = UnknownTopic
	}
	t.Total++
	n := t
	for i := 0; ; {
		j := strings.IndexByte(name[i:], '/')
		end := len(name)
		if j >= 0 {
			end = i + j
		}
		level := name[i:end]
		c := n.children[level]
		if c == nil {
			c = newTopic(level)
			c.Path = name[:end]
			n.children[level] = c
		}
		c.Total++
		n = c
		if j < 0 {
			break
		}
		i = end + 1
	}
	n.Count++
	n.Prev, n.Last = n.Last, r
}

// Children returns the levels below t, sorted by name.
func (t *Topic) Children() []*Topic {
	out := make([]*Topic, 0, len(t.children))
	for _, c := range t.children {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Topic) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// TopicLine is one line of the topic tree as shown: its depth and the level.
type TopicLine struct {
	Depth int
	*Topic
}

// Topics returns the topic tree, depth first, levels sorted by name (copies: the model goes
// on counting).
func (m *Model) Topics() []TopicLine {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []TopicLine
	var walk func(t *Topic, depth int)
	walk = func(t *Topic, depth int) {
		for _, c := range t.Children() {
			cp := *c
			out = append(out, TopicLine{depth, &cp})
			walk(c, depth+1)
		}
	}
	walk(m.topics, 0)
	return out
}

// PayloadText is the payload of a PUBLISH as the topic view and its diff show it: pretty
// JSON, text, or a hex dump.
func PayloadText(r *inspect.PacketRecord) string {
	if r == nil {
		return ""
	}
	if rd := r.Rendered(payload.Full); rd != nil {
		return rd.Text
	}
	return ""
}

// DiffLine is one line of a diff: Op is ' ' (both), '-' (only in the older), '+' (only in
// the newer).
type DiffLine struct {
	Op   byte
	Text string
}

// maxDiffLines bounds the quadratic line diff of what differs between the common first and
// last lines; longer payloads are shown replaced whole.
const maxDiffLines = 2000

// Diff compares two texts line by line (longest common subsequence): the common first and last
// lines are kept as they are, the lines between them compared with a table of
// (a+1)*(b+1) 16-bit lengths (2000 lines each way: 8 MB).
func Diff(older, newer string) []DiffLine {
	a, b := strings.Split(older, "\n"), strings.Split(newer, "\n")
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	out := make([]DiffLine, 0, len(a)+len(b)-pre-suf)
	for _, l := range a[:pre] {
		out = append(out, DiffLine{' ', l})
	}
	out = diffMiddle(out, a[pre:len(a)-suf], b[pre:len(b)-suf])
	for _, l := range a[len(a)-suf:] {
		out = append(out, DiffLine{' ', l})
	}
	return out
}

// diffMiddle appends the diff of a and b to out.
func diffMiddle(out []DiffLine, a, b []string) []DiffLine {
	if len(a) > maxDiffLines || len(b) > maxDiffLines {
		for _, l := range a {
			out = append(out, DiffLine{'-', l})
		}
		for _, l := range b {
			out = append(out, DiffLine{'+', l})
		}
		return out
	}
	// lcs[i*w+j] is the length of the common subsequence of a[i:] and b[j:].
	w := len(b) + 1
	lcs := make([]uint16, (len(a)+1)*w)
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
			} else {
				lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] == b[j]:
			out = append(out, DiffLine{' ', a[i]})
			i, j = i+1, j+1
		case lcs[(i+1)*w+j] >= lcs[i*w+j+1]:
			out = append(out, DiffLine{'-', a[i]})
			i++
		default:
			out = append(out, DiffLine{'+', b[j]})
			j++
		}
	}
	for ; i < len(a); i++ {
		out = append(out, DiffLine{'-', a[i]})
	}
	for ; j < len(b); j++ {
		out = append(out, DiffLine{'+', b[j]})
	}
	return out
}
