package inspect

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/decode"
)

func TestProfileApsaraMQ(t *testing.T) {
	p, err := LoadProfile("apsaramq")
	if err != nil {
		t.Fatal(err)
	}
	if p.KeepAlive.Max != 480 || p.SessionExpiry.Min != 600 || p.TopicAliasMaximum != 30 || p.MaxPayload != 65536 || p.MaximumPacketSize != 131072 {
		t.Fatalf("profile %+v", p)
	}
	s := newSession(t, Options{Profile: p})
	cr := s.c2s(&decode.Connect{ClientID: "dev1", KeepAlive: 900, Properties: props(ip(decode.PropSessionExpiry, 60), ip(decode.PropTopicAliasMaximum, 50))})
	for rule, want := range map[string]string{
		RuleProfileKeepAlive:  "keep alive 900 s: this broker (apsaramq) clamps it to 480 s",
		RuleProfileSession:    "session expiry 60 s will be raised to 600 s",
		RuleProfileTopicAlias: "Topic Alias Maximum 50 in CONNECT: above 30, this broker (apsaramq) will send no aliases",
	} {
		if n := note(t, cr, rule); !strings.Contains(n.Text, want) {
			t.Errorf("%s: %q, want %q", rule, n.Text, want)
		}
	}
	// The CONNACK the profile predicts raises no mismatch.
	ar := s.s2c(&decode.Connack{Properties: props(ip(decode.PropServerKeepAlive, 480), ip(decode.PropSessionExpiry, 600),
		ip(decode.PropTopicAliasMaximum, 30), ip(decode.PropMaximumPacketSize, 131072))})
	noNote(t, ar, RuleProfileMismatch)
	big := s.c2s(publish("a", 0, 0, strings.Repeat("x", 70*1024)))
	if n := note(t, big, RuleProfilePayload); !strings.Contains(n.Text, "PUBLISH body 70 KB: above this broker's 64 KB") {
		t.Errorf("payload note %q", n.Text)
	}
	d := s.s2c(&decode.Disconnect{ReasonCode: decode.PacketTooLarge, HasReason: true})
	if n := note(t, d, RuleDisconnectError); n.Cause == nil || n.Cause.Index != big.Index {
		t.Errorf("cause %+v", n.Cause)
	}

	s = newSession(t, Options{Profile: p})
	s.c2s(&decode.Connect{ClientID: "dev1", KeepAlive: 900})
	ar = s.s2c(&decode.Connack{})
	if n := note(t, ar, RuleProfileMismatch); !strings.Contains(n.Text, "Server Keep Alive 480, CONNACK has none") {
		t.Errorf("mismatch %q", n.Text)
	}
}

func TestProfileSpecQuiet(t *testing.T) {
	s := newSession(t, Options{})
	cr := s.c2s(&decode.Connect{ClientID: "dev1", KeepAlive: 900, Properties: props(ip(decode.PropSessionExpiry, 60), ip(decode.PropTopicAliasMaximum, 50))})
	clean(t, cr)
}

func TestProfileFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "mybroker.yaml")
	os.WriteFile(good, []byte("keep_alive: {max: 300}\nmax_payload: 1024\nretain_available: false\n"), 0o644)
	p, err := LoadProfile(good)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "mybroker" || p.KeepAlive.Max != 300 || p.RetainAvailable == nil || *p.RetainAvailable {
		t.Fatalf("%+v", p)
	}
	s := newSession(t, Options{Profile: p})
	s.connect(nil, nil)
	pub := publish("a", 0, 0, "x")
	pub.Retain = true
	note(t, s.c2s(pub), RuleProfileRetain)

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("keep_alive: {max: 300}\nmax_paylod: 1024\n"), 0o644)
	if _, err := LoadProfile(bad); err == nil || !errors.Is(err, ErrProfile) || !strings.Contains(err.Error(), "max_paylod") {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := LoadProfile("nosuch"); err == nil || !strings.Contains(err.Error(), "apsaramq") {
		t.Errorf("unknown name: %v", err)
	}
	rng := filepath.Join(dir, "range.yaml")
	os.WriteFile(rng, []byte("keep_alive: {min: 500, max: 300}\n"), 0o644)
	if _, err := LoadProfile(rng); err == nil {
		t.Error("min > max accepted")
	}
}

func TestProfileReceiveMaximum(t *testing.T) {
	p, err := ParseProfile([]byte("receive_maximum: 1\n"), "rm")
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(t, Options{Profile: p})
	s.c2s(&decode.Connect{ClientID: "d"})
	note(t, s.s2c(&decode.Connack{}), RuleProfileMismatch)
	clean(t, s.c2s(publish("a", 1, 1, "x")))
	note(t, s.c2s(publish("a", 1, 2, "x")), RuleProfileReceiveMax)
}

func TestProfileMirrors(t *testing.T) {
	p, _ := LoadProfile("apsaramq")
	s := newSession(t, Options{Profile: p})
	s.c2s(&decode.Connect{ClientID: "d", KeepAlive: 60, Properties: props(ip(decode.PropReceiveMaximum, 5))})
	ar := s.s2c(&decode.Connack{Properties: props(ip(decode.PropTopicAliasMaximum, 30), ip(decode.PropMaximumPacketSize, 131072))})
	if n := note(t, ar, RuleProfileMismatch); !strings.Contains(n.Text, "Receive Maximum 5, CONNACK has none") {
		t.Errorf("%q", n.Text)
	}
}
