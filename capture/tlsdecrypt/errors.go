package tlsdecrypt

import (
	"errors"
	"fmt"
)

// Why a connection, or one direction of it, cannot be decrypted. Match them with errors.Is
// on Status.Err; the *Error around them says where.
var (
	ErrNoKey              = errors.New("no key for the client random in the key log")
	ErrUnsupportedSuite   = errors.New("cipher suite not supported")
	ErrUnsupportedVersion = errors.New("TLS version not supported")
	ErrWrongKey           = errors.New("the first protected record failed authentication: wrong key")
	ErrLost               = errors.New("records lost: the record sequence cannot be found again")
	ErrDamaged            = errors.New("a record failed authentication with no bytes lost")
	ErrMidStream          = errors.New("the capture began after the TLS handshake")
	ErrNoClientHello      = errors.New("the ClientHello was not captured")
	ErrNoServerHello      = errors.New("the ServerHello was not captured")
	ErrNotTLS             = errors.New("not TLS records")
	ErrEarlyData          = errors.New("0-RTT early data is not decrypted")
)

// Error is why a Conn cannot decrypt (all or part of) a connection.
type Error struct {
	Err     error  // one of the Err values above
	Dir     Dir    // the direction it was found in
	Random  Random // ErrNoKey: the client random that has no secrets
	Label   string // ErrNoKey: the key log label missing, when some secrets were there
	Suite   uint16 // ErrUnsupportedSuite
	Version uint16 // ErrUnsupportedVersion
	Record  int64  // the record of Dir that failed (1-based), for the authentication failures
	Good    int64  // ErrDamaged: records decrypted with the same key before it
	Lost    int    // ErrLost, ErrNoServerHello, ErrNoClientHello: bytes lost before it
}

func (e *Error) Unwrap() error { return e.Err }

func (e *Error) Error() string {
	from := e.Dir.sender()
	switch e.Err {
	case ErrNoKey:
		if e.Label != "" {
			return fmt.Sprintf("the key log has secrets for client random %s, but not %s", e.Random, e.Label)
		}
		return fmt.Sprintf("no key for client random %s in the key log", e.Random)
	case ErrUnsupportedSuite:
		return fmt.Sprintf("cipher suite %s is not supported", SuiteName(e.Suite))
	case ErrUnsupportedVersion:
		return fmt.Sprintf("%s is not supported (TLS 1.2 and 1.3 are)", VersionName(e.Version))
	case ErrWrongKey:
		return fmt.Sprintf("the %s's first protected record failed authentication with no bytes lost before it: the key log's secret for this connection is wrong", from)
	case ErrLost:
		return fmt.Sprintf("after %d bytes from the %s were lost, no later record could be decrypted (the record sequence was not found again)", e.Lost, from)
	case ErrDamaged:
		return fmt.Sprintf("record %d from the %s failed authentication after %d decrypted with the same key and no bytes lost: its bytes were probably altered in the capture, not the key wrong", e.Record, from, e.Good)
	case ErrMidStream:
		return "the capture began after the TLS handshake: the ClientHello, whose random names the keys, was not captured"
	case ErrNoClientHello:
		return fmt.Sprintf("the ClientHello was not captured whole (%d bytes lost): its random names the keys", e.Lost)
	case ErrNoServerHello:
		return "the ServerHello was not captured: the cipher suite and version are unknown"
	case ErrNotTLS:
		return fmt.Sprintf("the %s's bytes are not TLS records", from)
	case ErrEarlyData:
		return "the client sent 0-RTT early data, which is not decrypted"
	}
	return e.Err.Error()
}

func (d Dir) sender() string {
	if d == ServerToClient {
		return "server"
	}
	return "client"
}
