package proxy

import (
	"errors"
	"time"
)

// Clock is the time the proxy's stages run on: the real clock, or in tests one that advances
// on demand (internal/fakeclock), so that a fault that waits or emits later is tested without
// sleeping.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f on a goroutine of its own once d has passed (as time.AfterFunc); stop
	// cancels it, reporting whether it did so before f was called.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// realClock is the machine's clock, read through now (Config.Now).
type realClock struct{ now func() time.Time }

func (c realClock) Now() time.Time { return c.now() }

func (realClock) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// ErrDirClosed is why a stage's wait or later emission did not happen: its direction ended
// (the connection closed, or the proxy is ending it) first.
var ErrDirClosed = errors.New("the direction ended first")

// ErrNotFramed is why a later emission did not happen: the direction's stream could not be
// framed (a malformed header) and its bytes pass untouched, so there is no frame boundary to
// place it at.
var ErrNotFramed = errors.New("the direction's stream is no longer framed")
