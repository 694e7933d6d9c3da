// Package capture finds the MQTT connections in packet captures and live traffic and turns
// them back into byte streams; it also writes byte streams and packets as pcapng files.
//
// Reading: ReadFiles (pcap or pcapng) and Live (an AF_PACKET socket on Linux, no cgo) hand
// packets to an Analyzer, which decodes the link layer (Ethernet, Linux cooked SLL and SLL2,
// raw IP, BSD loopback, VLAN tags), IPv4 and IPv6 (rebuilding fragmented datagrams), and
// reassembles TCP with gopacket's reassembly package. Each TCP connection is classified from its ports and first bytes:
// MQTT (a known port, or a CONNECT on any port), MQTT over WebSocket (an HTTP upgrade naming
// the mqtt subprotocol; frames are unmasked and defragmented), TLS (reported with the server
// name of its ClientHello) or something else (ignored). The MQTT byte stream of each
// direction goes to a Conn from the Analyzer's Handler, with the bytes lost to the capture
// reported as gaps. Memory grows with the number of open connections, not with the input.
// Inspector is the Handler that inspects each connection with package inspect, on every core
// if asked, and passes the records on in order.
//
// Writing: StreamWriter turns byte streams (a proxy's two directions) into a well-formed TCP
// conversation in a pcapng file, handshake and checksums included; PacketWriter copies
// captured packets into a new pcapng file.
package capture
