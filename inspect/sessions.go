package inspect

import (
	"sync"
	"time"
)

// Sessions links the connections that use the same Client Identifier, so that a session
// takeover is explained on both sides: the new CONNECT says which connection it takes over,
// and the old connection's DISCONNECT 0x8E (or its close, in MQTT 3.1.1) says which connection
// took it. Share one Sessions between the Conns of a capture or a proxy (Options.Sessions).
// It is safe for concurrent use.
type Sessions struct {
	mu     sync.Mutex
	owners map[string]sessionOwner
}

type sessionOwner struct {
	conn  int
	index int
	t     time.Time
	open  bool
}

// NewSessions returns an empty registry.
func NewSessions() *Sessions { return &Sessions{owners: map[string]sessionOwner{}} }

// claim records that connection conn sent CONNECT #index for clientID at t, and returns the
// connection that held the Client Identifier before, if it is still open.
func (s *Sessions) claim(clientID string, conn, index int, t time.Time) (prev sessionOwner, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, ok = s.owners[clientID]
	s.owners[clientID] = sessionOwner{conn: conn, index: index, t: t, open: true}
	return prev, ok && prev.open && prev.conn != conn
}

// owner returns the connection that holds clientID now.
func (s *Sessions) owner(clientID string) (sessionOwner, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.owners[clientID]
	return o, ok
}

// release marks conn closed if it still holds clientID.
func (s *Sessions) release(clientID string, conn int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.owners[clientID]; ok && o.conn == conn {
		o.open = false
		s.owners[clientID] = o
	}
}
