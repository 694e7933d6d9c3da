package ui

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/mqscope/mqscope/inspect"
)

// appHost is tview's Application as the screens' host.
type appHost struct {
	*tview.Application
	stop func()
}

func (a appHost) SetFocus(p tview.Primitive) { a.Application.SetFocus(p) }

// Stop stops the application once, whoever asks (q, or the end of the source): tview's Run
// clears its screen without its lock on the way out, so a second Stop would race with it.
func (a appHost) Stop() { a.stop() }

// Run shows the screens on the terminal until the user quits or ctx ends. The terminal is
// restored on every way out, panics included (the panic is then re-raised, so that it is
// reported on a usable terminal). screen is nil for the terminal of the process.
func (u *UI) Run(ctx context.Context, screen tcell.Screen) (err error) {
	app := tview.NewApplication()
	if screen != nil {
		app.SetScreen(screen)
	}
	var once sync.Once
	stop := func() { once.Do(app.Stop) }
	u.host = appHost{app, stop}
	app.SetRoot(u.root, true).EnableMouse(true).SetInputCapture(u.capture)
	if f := u.opts.AfterDraw; f != nil {
		app.SetAfterDrawFunc(func(tcell.Screen) { f(u) })
	}
	app.SetFocus(u.list)
	u.act.Notify(u.m.Touch) // held packets: redraw (never blocks the proxy)
	u.refresh()
	done := make(chan struct{})
	defer close(done)
	go func() {
		// Redraw when the model changed (at most 10 times a second), and each second for the
		// clocks (keep-alive countdown).
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var last uint64
		var lastDraw time.Time
		for {
			select {
			case <-ctx.Done():
				stop()
				return
			case <-done:
				return
			case now := <-tick.C:
				if g := u.m.Gen(); g != last || now.Sub(lastDraw) >= time.Second {
					last, lastDraw = g, now
					app.QueueUpdateDraw(u.refresh)
				}
			}
		}
	}()
	defer func() {
		if p := recover(); p != nil {
			// tview finalises the screen before re-panicking from its event loop; a panic
			// of ours outside it gets the same.
			stop()
			panic(p)
		}
	}()
	return app.Run()
}

// Drops returns what tells the model, and next (nil: nothing else), of the records an
// inspect.Output feeding the model could not deliver (a live source faster than the screens),
// so that the header says how many.
func (m *Model) Drops(next inspect.Drops) inspect.Drops { return modelDrops{m, next} }

type modelDrops struct {
	m    *Model
	next inspect.Drops
}

func (d modelDrops) Dropped(n int) {
	d.m.Lost(n)
	if d.next != nil {
		d.next.Dropped(n)
	}
}

func (d modelDrops) EventsDropped(n int) {
	if d.next != nil {
		d.next.EventsDropped(n)
	}
}

// Lost counts records a live source could not deliver to the model.
func (m *Model) Lost(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lost += n
	m.changed()
}

// LostText says how many records the screens did not get ("" when none).
func (m *Model) LostText() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lost == 0 {
		return ""
	}
	return fmt.Sprintf("%d records lost (the screens fell behind)", m.lost)
}
