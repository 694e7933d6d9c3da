package proxy

import "github.com/mqscope/mqscope/stream"

// Endpoint is a parsed --listen or --upstream address (stream.Endpoint).
type Endpoint = stream.Endpoint

// ParseEndpoint parses a --listen or --upstream address (stream.ParseEndpoint).
func ParseEndpoint(s, defaultHost string) (Endpoint, error) {
	return stream.ParseEndpoint(s, defaultHost)
}
