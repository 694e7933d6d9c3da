// Package capture is mqscope's source of MQTT byte streams from packet captures and live
// traffic: it finds the MQTT connections and turns them back into byte streams, fed to a
// stream.Observer like every other source's.
//
// Reading: ReadFiles (pcap or pcapng) and Live (an AF_PACKET socket on Linux, no cgo) hand
// packets to an Analyzer, which decodes the link layer (Ethernet, Linux cooked SLL and SLL2,
// raw IP, BSD loopback, VLAN tags), IPv4 and IPv6 (rebuilding fragmented datagrams), and
// reassembles TCP with gopacket's reassembly package. Each TCP connection is classified from its ports and first bytes:
// MQTT (a known port, or a CONNECT on any port), MQTT over WebSocket (an HTTP upgrade naming
// the mqtt subprotocol; frames are unmasked and defragmented), TLS (reported with the server
// name of its ClientHello) or something else (ignored). The MQTT byte stream of each
// direction goes to the stream.ConnObserver the Observer returned, with the bytes lost to the
// capture reported as gaps and the end as a typed stream.End; observers that also implement
// stream.Keeper (which packets were wanted, for read --write) or stream.Unseer (bytes probably
// lost) are told more. Memory grows with the number of open connections, not with the input.
// Inspector is the Observer that inspects each connection with package inspect, on every core
// if asked, and passes the records on in order. Writing captures is package pcapng's job.
package capture
