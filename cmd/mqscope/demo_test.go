package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
)

// demoText runs the demo's story quickly and returns what it printed.
func demoText(t *testing.T, seed uint64) string {
	t.Helper()
	var out, errb bytes.Buffer
	o := &demoOptions{io: &streams{Out: &out, Err: &errb, Color: "never"}, headless: true, duration: 60 * time.Second, seed: seed, listen: "127.0.0.1:0", pace: time.Millisecond}
	if err := runDemo(context.Background(), o); err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	return out.String()
}

// TestDemoHeadless runs the whole story against the embedded broker and checks that each
// exchange happened as the peers made it: the broker's and the devices' reactions to the
// faults, the response, the Will, and mqscope's cause links.
func TestDemoHeadless(t *testing.T) {
	out := demoText(t, 7)
	for _, want := range []string{
		// Negotiation: the broker grants the Topic Alias Maximum it enforces.
		`← CONNACK     0x00 Success receive_maximum=20 topic_alias_maximum=8`,
		// The device's alias, mapped then used alone, and the broker's own to the dashboard.
		`→ PUBLISH     "demo/sensor-1/temp" q0 alias=1`,
		`→ PUBLISH     "demo/sensor-1/temp" q0 alias=1 22B`, // no topic: 22 bytes, not 40
		// QoS 2.
		`← PUBCOMP`,
		// Request and response, linked.
		`(response to #`,
		// The oversize fault, the device's refusal and the link to its cause.
		`fault ← oversize: PUBLISH grown from 45 to 513 bytes`,
		`→ DISCONNECT  0x95 Packet too large`,
		`↳ caused by PUBLISH #18, 513 bytes, over the 512-byte Maximum Packet Size set by the client in CONNECT`,
		// The broker redelivers the unacknowledged command to the resumed session.
		`← CONNACK     0x00 Success session_present`,
		`"demo/cmd/sensor-1" q1 dup 45B`,
		// The alias overflow and the broker's DISCONNECT, linked.
		`fault → alias-overflow: PUBLISH to "demo/sensor-2/humidity" given Topic Alias 9`,
		`← DISCONNECT  0x94 Topic Alias invalid`,
		`↳ caused by PUBLISH #3, 34 bytes, Topic Alias 9, above the maximum 8 granted in CONNACK`,
		// The proxy's DISCONNECT 0x89 in the server's place.
		`← DISCONNECT  0x89 Server busy reason_string="busy (mqscope demo)"`,
		// The Will reaches the dashboard.
		`"demo/status/sensor-1" q1 alias=1 24B  offline`,
		`demo: the story is over`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the story lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("the story:\n%s", out)
	}
}

var (
	publishLine  = regexp.MustCompile(`\[\d+\] #\d+ +(→ PUBLISH.*)$`)
	responseTime = regexp.MustCompile(`after [0-9.]+[µm]?s`)
)

// TestDemoSeed: the story told with a seed is told again the same with it (its steps, faults,
// values and correlation data), and differently with another.
func TestDemoSeed(t *testing.T) {
	story := func(out string) string {
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "demo: ") {
				lines = append(lines, l)
			}
			// The devices' PUBLISH packets, without time, packet number and response time.
			if m := publishLine.FindStringSubmatch(l); m != nil {
				lines = append(lines, responseTime.ReplaceAllString(m[1], "after T"))
			}
		}
		return strings.Join(lines, "\n")
	}
	a, b, c := story(demoText(t, 3)), story(demoText(t, 3)), story(demoText(t, 4))
	if a != b {
		t.Errorf("two runs with seed 3 differ:\n%s\n---\n%s", a, b)
	}
	if a == c {
		t.Errorf("seeds 3 and 4 told the same story:\n%s", a)
	}
}

// simText is what a simulation screen shows, row by row.
func simText(s tcell.SimulationScreen) string {
	cells, w, _ := s.GetContents()
	var sb strings.Builder
	for i, c := range cells {
		if len(c.Runes) > 0 {
			sb.WriteString(string(c.Runes))
		} else {
			sb.WriteByte(' ')
		}
		if (i+1)%w == 0 {
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}

// TestDemoUI: mqscope demo without --headless shows the story in the terminal UI (the header
// says what to press; the devices' packets come in, and their connections), and q, confirmed,
// quits.
func TestDemoUI(t *testing.T) {
	screen := tcell.NewSimulationScreen("UTF-8")
	screens := make(chan string, 1)
	o := &demoOptions{io: &streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}, Color: "never"}, duration: time.Minute, seed: 1,
		listen: "127.0.0.1:0", pace: time.Millisecond, screen: screen,
		drawn: func() {
			select { // the latest screen, read on the UI's goroutine
			case <-screens:
			default:
			}
			screens <- simText(screen)
		}}
	done := make(chan error, 1)
	go func() { done <- runDemo(context.Background(), o) }()
	waitScreen := func(what string, ok func(string) bool) {
		t.Helper()
		var last string
		deadline := time.After(30 * time.Second)
		for {
			select {
			case last = <-screens:
				if ok(last) {
					return
				}
			case <-deadline:
				t.Fatalf("the demo's screen never showed %s:\n%s", what, last)
			}
		}
	}
	waitScreen("its keys and a CONNACK", func(s string) bool {
		return strings.Contains(s, "? lists the keys, ! injects a fault") && strings.Contains(s, "← CONNACK")
	})
	screen.InjectKey(tcell.KeyRune, '1', tcell.ModNone)
	waitScreen("the devices' connections", func(s string) bool {
		return strings.Contains(s, "dashboard") && strings.Contains(s, "sensor-2")
	})
	screen.InjectKey(tcell.KeyRune, 'q', tcell.ModNone)
	screen.InjectKey(tcell.KeyEnter, 0, tcell.ModNone) // Yes: drop the connections
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the demo did not quit")
	}
}

// TestTellAgain: in the UI the story begins again after it ends, and after it fails (saying
// why), until the demo quits.
func TestTellAgain(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var said []string
	runs := 0
	tellAgain(ctx, func(context.Context) error {
		runs++
		switch runs {
		case 1:
			return errors.New("sensor-1: connection reset")
		case 3:
			cancel() // the user quits during the third telling
			return ctx.Err()
		}
		return nil
	}, func(s string) { said = append(said, s) }, func(ctx context.Context) error { return ctx.Err() })
	want := []string{"the story stopped: sensor-1: connection reset; it begins again", "the story is over; it begins again"}
	if runs != 3 || !slices.Equal(said, want) {
		t.Errorf("%d tellings, said %q; want 3, %q", runs, said, want)
	}
}
