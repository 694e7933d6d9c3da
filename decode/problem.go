package decode

import (
	"errors"
	"fmt"
	"strings"
)

// Categories of problems; errors.Is(problem, ErrMalformed) and so on work on every Problem.
var (
	// ErrMalformed: the bytes cannot be parsed as the standard says (reason code 0x81).
	ErrMalformed = errors.New("malformed packet")
	// ErrProtocol: parsed, but breaks a rule of the protocol (reason code 0x82).
	ErrProtocol = errors.New("protocol error")
	// ErrTooLarge: the frame is larger than the allowed maximum (reason code 0x95).
	ErrTooLarge = errors.New("packet too large")
	// ErrUnsupportedVersion: the CONNECT asks for a protocol level mqscope does not know (0x84).
	ErrUnsupportedVersion = errors.New("unsupported protocol version")
	// ErrSuspicious: legal, but likely a mistake (warnings such as control characters in a string).
	ErrSuspicious = errors.New("suspicious value")
)

// Level says how bad a problem is.
type Level uint8

// Problem levels, most severe first.
const (
	LevelError Level = iota
	LevelWarning
	LevelInfo
)

func (l Level) String() string {
	switch l {
	case LevelError:
		return "error"
	case LevelWarning:
		return "warning"
	}
	return "info"
}

// Problem is one thing wrong with a packet: where, which field, which rule of the standard, and
// what reason code a receiver would send.
type Problem struct {
	Offset   int        // byte offset in the frame where the problem is
	Field    string     // the field being read, e.g. "topic" or "properties.topic_alias"
	Rule     string     // the standard's conformance statement, e.g. "MQTT-1.5.4-2"; "" when none
	Reason   ReasonCode // the reason code a receiver would answer with (0x81, 0x82, ...)
	Level    Level
	Category error // ErrMalformed, ErrProtocol, ...
	Message  string
}

func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "offset %d", p.Offset)
	if p.Field != "" {
		fmt.Fprintf(&b, " (%s)", p.Field)
	}
	b.WriteString(": ")
	b.WriteString(p.Message)
	if p.Rule != "" {
		fmt.Fprintf(&b, " [%s]", p.Rule)
	}
	return b.String()
}

// Unwrap returns the problem's category so errors.Is works.
func (p *Problem) Unwrap() error { return p.Category }

// Problems is the list of problems found in one packet.
type Problems []*Problem

// Err returns the error-level problems joined, or nil when there are none.
func (ps Problems) Err() error {
	var errs []error
	for _, p := range ps {
		if p.Level == LevelError {
			errs = append(errs, p)
		}
	}
	return errors.Join(errs...)
}

// Has reports whether a problem with the given rule ID is present.
func (ps Problems) Has(rule string) bool {
	for _, p := range ps {
		if p.Rule == rule {
			return true
		}
	}
	return false
}
