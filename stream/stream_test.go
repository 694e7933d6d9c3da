package stream

import (
	"encoding/json"
	"testing"
	"time"
)

func TestTransportText(t *testing.T) {
	for tr := TCP; tr <= Memory; tr++ {
		b, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		var back Transport
		if err := json.Unmarshal(b, &back); err != nil || back != tr {
			t.Errorf("%v: %s read back as %v (%v)", tr, b, back, err)
		}
	}
	var tr Transport
	if err := tr.UnmarshalText([]byte("carrier-pigeon")); err == nil {
		t.Error("an unknown transport name was accepted")
	}
}

func TestDir(t *testing.T) {
	if C2S.Peer() != S2C || S2C.Peer() != C2S || C2S.Sender() != Client || S2C.Sender() != Server {
		t.Error("directions do not pair up")
	}
	if C2S.String() != "c2s" || S2C.Arrow() != "←" {
		t.Errorf("names %q %q", C2S, S2C.Arrow())
	}
}

type rec struct{ got []string }

func (r *rec) Open(c *Conn) ConnObserver {
	if c.ID == 2 {
		return nil // not interested
	}
	return r
}
func (r *rec) Data(d Dir, _ time.Time, b []byte) { r.got = append(r.got, d.String()+":"+string(b)) }
func (r *rec) Gap(d Dir, _ time.Time, n int)     { r.got = append(r.got, "gap") }
func (r *rec) Close(_ time.Time, e End)          { r.got = append(r.got, e.By.String()+" "+e.How.String()) }

// TestObservers: a fan-out gives each interested observer every event in order, and is not
// interested when none is.
func TestObservers(t *testing.T) {
	a, b := &rec{}, &rec{}
	os := Observers{a, b}
	if os.Open(&Conn{ID: 2}) != nil {
		t.Error("nobody is interested in connection 2, yet Open returned an observer")
	}
	co := os.Open(&Conn{ID: 1})
	co.Data(C2S, time.Time{}, []byte("x"))
	co.Gap(S2C, time.Time{}, 3)
	co.Close(time.Time{}, End{By: Server, How: RST})
	for _, r := range []*rec{a, b} {
		if got := r.got; len(got) != 3 || got[0] != "c2s:x" || got[1] != "gap" || got[2] != "server RST" {
			t.Errorf("events %q", got)
		}
	}
	if !(End{How: Timeout}).Abrupt() || (End{How: FIN}).Abrupt() {
		t.Error("Abrupt")
	}
}
