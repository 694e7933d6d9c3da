// Package inspect is mqscope's connection model: it takes the decoded frames of one MQTT
// connection, in order, with a direction and a timestamp, and explains them.
//
// A Conn keeps, per connection, what was negotiated (what CONNECT asked for, what CONNACK
// granted and the effective value of every limit by direction, with the standard's defaults),
// the Topic Alias table of each direction, the QoS 1 and 2 messages in flight against the
// peer's Receive Maximum, the packet identifiers in use, keep alive timing, request/response
// pairs and the AUTH exchange. Every packet becomes a PacketRecord with its resolved topic and
// its findings (Notes), each with a rule ID (the standard's conformance statement, or an
// mqscope ID listed by MQScopeRules), a level and a sentence; an error reason code is linked to
// the packet that most likely caused it (Note.Cause).
//
// A Profile adds what a given broker is known to do ("apsaramq" is built in; users write YAML).
//
// The record pipeline is one for every source and consumer. Observer (pipeline.go) is the
// stream.Observer that any source (a capture, the proxy) feeds: it inspects each connection and
// emits its records, filtered by connection (ConnFilter: a connection's session and close
// records follow its first accepted packet). Output (queue.go) queues records off the source's
// path to a Writer and fans them out through a Hub to subscribers (the control API's event
// streams, the UI, the test runner), each with its own queue and RecordFilter. Writers
// (textw.go, jsonw.go, summaryw.go) render records as text, JSON lines (a stable interface
// documented in README.md) or a summary; a Filter (filter.go) selects records with an expr-lang
// expression.
package inspect
