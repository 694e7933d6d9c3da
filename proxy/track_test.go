package proxy

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mqscope/mqscope/decode"
)

// trackStream is a stream of frames of several header lengths: PINGREQ (2-byte header), a
// PUBLISH of 300 bytes (3-byte header) and one of 20,000 bytes (4-byte header), a PUBACK.
func trackStream(t testing.TB) (stream []byte, frames [][]byte) {
	t.Helper()
	for _, p := range []decode.Packet{
		&decode.Pingreq{},
		&decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: "a", Payload: make([]byte, 300)},
		&decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: "b", QoS: 1, PacketID: 9, Payload: make([]byte, 20000)},
		&decode.Ack{Base: decode.Base{Version: decode.V5}, PacketType: decode.PUBACK, PacketID: 9},
	} {
		b, err := decode.Encode(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, b)
		stream = append(stream, b...)
	}
	return stream, frames
}

// sighting is a frame as the tracker reports it: its type, and the bytes counted for it (its
// header, then each piece of its body).
type sighting struct {
	typ  byte
	size int
}

// trackPieces feeds data to a fresh tracker in pieces of the sizes in plan (cycled), checking
// after each piece that the tracker holds no more than a fixed header and that body bytes are
// counted for the frame whose header came last.
func trackPieces(t testing.TB, data []byte, plan []int) (tracker, []sighting) {
	t.Helper()
	tr := newTracker()
	var seen []sighting
	for i, off := 0, 0; off < len(data); i++ {
		n := min(len(data)-off, plan[i%len(plan)])
		tr.feed(data[off:off+n], func(typ byte, start bool, n int) {
			if start {
				seen = append(seen, sighting{typ, n})
				return
			}
			if len(seen) == 0 || seen[len(seen)-1].typ != typ || n <= 0 {
				t.Fatalf("%d body bytes of a %d frame after %v", n, typ, seen)
			}
			seen[len(seen)-1].size += n
		})
		off += n
		if tr.fr.Buffered() > 5 {
			t.Fatalf("the tracker holds %d bytes after %d", tr.fr.Buffered(), off)
		}
	}
	return tr, seen
}

func TestTracker(t *testing.T) {
	stream, frames := trackStream(t)
	var want []sighting
	for _, f := range frames {
		want = append(want, sighting{f[0] >> 4, len(f)})
	}
	for _, plan := range [][]int{{len(stream)}, {1}, {3, 1, 700}, {1460}} {
		tr, seen := trackPieces(t, stream, plan)
		if len(seen) != len(want) {
			t.Fatalf("pieces %v: saw %v, want %v", plan, seen, want)
		}
		for i := range want {
			if seen[i] != want[i] {
				t.Fatalf("pieces %v: frame %d = %v, want %v", plan, i, seen[i], want[i])
			}
		}
		if !tr.boundary() || tr.broken || tr.frames != len(frames) || tr.partial() != 0 {
			t.Errorf("pieces %v: boundary %v broken %v, %d frames, %d bytes partial at the end of the last frame",
				plan, tr.boundary(), tr.broken, tr.frames, tr.partial())
		}
		if h := tr.headBytes(); !bytes.Equal(h, stream[:16]) {
			t.Errorf("pieces %v: head % x", plan, h)
		}
	}
	// Inside a frame (in its header, in its body) is no boundary; the header is reported as
	// soon as it is whole, and the bytes of the frame that came are partial.
	for cut, wantSeen := range map[int]int{2 + 1: 1, 2 + 3: 2, 2 + 100: 2, len(stream) - 1: 4} {
		tr, seen := trackPieces(t, stream[:cut], []int{cut})
		whole := len(seen) - 1
		if cut == 3 {
			whole = 1 // the PINGREQ, then one byte of a header
		}
		if tr.boundary() || len(seen) != wantSeen || tr.frames != whole {
			t.Errorf("cut at %d: boundary %v, %d frames seen, %d whole; want false, %d, %d", cut, tr.boundary(), len(seen), tr.frames, wantSeen, whole)
		}
	}
	if tr, _ := trackPieces(t, stream[:2+100], []int{7}); tr.partial() != 100 {
		t.Errorf("100 bytes into the PUBLISH: partial %d", tr.partial())
	}
	// A Remaining Length of five bytes ends tracking; what came before was counted.
	tr, seen := trackPieces(t, append(frames[0], 0x30, 0x80, 0x80, 0x80, 0x80, 0x01, 0xC0, 0x00), []int{2, 3})
	if !tr.broken || tr.boundary() || len(seen) != 1 {
		t.Errorf("after a malformed header: broken %v boundary %v, %d frames seen", tr.broken, tr.boundary(), len(seen))
	}
}

// FuzzTracker: in any split, the tracker reports the type and size of every frame SplitFrame
// finds in the whole stream, plus a last frame cut short (its bytes that came) once its header
// is whole; it stops at the first malformed header, and is at a boundary exactly where a frame
// ends.
func FuzzTracker(f *testing.F) {
	stream, _ := trackStream(f)
	f.Add(stream, []byte{1})
	f.Add(stream[:400], []byte{0, 5, 200})
	f.Add([]byte{0xC0, 0x00, 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, []byte{2})
	f.Add([]byte{0x30, 0x80, 0x00, 0x00}, []byte{})
	f.Fuzz(func(t *testing.T, data, splits []byte) {
		plan := []int{len(data) + 1}
		if len(splits) > 0 {
			plan = plan[:0]
			for _, s := range splits {
				plan = append(plan, 1+int(s))
			}
		}
		var want []sighting
		rest := data
		var stop error
		whole, partial := 0, 0
		for len(rest) > 0 {
			n, err := decode.SplitFrame(rest, 0)
			if err != nil {
				stop = err
				break
			}
			partial = len(rest)
			h, ok, _ := decode.ParseHeader(rest)
			if !ok {
				break
			}
			if n == 0 {
				want = append(want, sighting{byte(h.Type), len(rest)}) // a last frame cut short
				rest = nil
				break
			}
			want = append(want, sighting{byte(h.Type), n})
			whole++
			partial = 0
			rest = rest[n:]
		}
		if stop != nil {
			partial = 0
		}
		tr, seen := trackPieces(t, data, plan)
		if len(seen) != len(want) {
			t.Fatalf("saw %v, SplitFrame finds %v", seen, want)
		}
		for i := range want {
			if seen[i] != want[i] {
				t.Fatalf("frame %d: %v, SplitFrame finds %v", i, seen[i], want[i])
			}
		}
		atEnd := stop == nil && partial == 0
		if tr.broken != errors.Is(stop, decode.ErrMalformed) || tr.boundary() != atEnd || tr.frames != whole || tr.partial() != partial {
			t.Fatalf("broken %v boundary %v, %d frames, %d partial; SplitFrame stops with %v, %d frames, %d partial",
				tr.broken, tr.boundary(), tr.frames, tr.partial(), stop, whole, partial)
		}
	})
}
