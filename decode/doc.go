// Package decode is mqscope's wire codec for MQTT 5.0, 3.1.1 and 3.1.
//
// Decoding is best effort and separate from judging: Decode always returns a packet holding every
// field it could read, its exact bytes, the offset and length of every field and property, and all
// the problems found, each with its byte offset, the rule of the standard it breaks and the reason
// code a receiver would answer with. Encode builds packets for every type and version;
// Decode(Encode(p)) equals p and Encode(Decode(b)) equals b for well-formed input.
//
// SplitFrame and Framer find frame boundaries in byte streams that arrive in arbitrary pieces.
// Framer is mqscope's one framer: inspection, the proxy's boundary tracking (Keep, holding
// headers only) and its fault stages use it; it skips oversized frames and resynchronises
// after malformed headers or lost bytes when asked.
//
// The package does no I/O and imports nothing else of mqscope's.
package decode
