package decode

import (
	"slices"
	"strings"
)

// Rule is one numbered conformance statement of the MQTT 5.0 standard (OASIS Standard, 7 March
// 2019), such as [MQTT-3.3.2-8]. Problems name the rule they break by its ID; LookupRule turns
// that ID into a one-line explanation.
type Rule struct {
	// ID is the statement's tag without brackets, e.g. "MQTT-3.3.2-8".
	ID string
	// Section is the section of the standard that holds the statement, e.g. "3.3.2.3.4". It
	// starts with the ID's section number once trailing ".0" parts are dropped ("MQTT-4.7.0-1"
	// lives in 4.7.1).
	Section string
	// Text says what the statement requires, in one sentence of our own words.
	Text string
}

// rules holds every numbered statement of the MQTT 5.0 standard, in the standard's order. The
// IDs were checked against the standard's text; MQTT 3.1.1 numbers its statements differently
// and is not covered here.
var rules = []Rule{
	// 1.5 Data representation
	{"MQTT-1.5.4-1", "1.5.4", "A UTF-8 string must be well-formed UTF-8 and must not encode the surrogate code points U+D800 to U+DFFF; a receiver treats anything else as a Malformed Packet."},
	{"MQTT-1.5.4-2", "1.5.4", "A UTF-8 string must not contain the null character U+0000; a packet that has one is malformed."},
	{"MQTT-1.5.4-3", "1.5.4", "The bytes EF BB BF inside a string are the character U+FEFF (zero width no-break space), not a byte order mark: a receiver must keep them, never skip or strip them."},
	{"MQTT-1.5.5-1", "1.5.5", "A Variable Byte Integer must be written in the fewest bytes that hold its value (no extra 0x80 continuation bytes)."},
	{"MQTT-1.5.7-1", "1.5.7", "Both the name and the value of a UTF-8 string pair (a User Property) must obey the UTF-8 string rules; otherwise the packet is malformed."},

	// 2 Control packet format: fixed header, packet identifier, properties
	{"MQTT-2.1.3-1", "2.1.3", "Fixed-header flag bits marked reserved must hold exactly the value the standard lists for the packet type; any other value makes the packet malformed."},
	{"MQTT-2.2.1-2", "2.2.1", "A QoS 0 PUBLISH must not carry a Packet Identifier."},
	{"MQTT-2.2.1-3", "2.2.1", "Every new SUBSCRIBE, UNSUBSCRIBE or QoS 1/2 PUBLISH a client sends needs a non-zero Packet Identifier that is not already in use."},
	{"MQTT-2.2.1-4", "2.2.1", "Every new QoS 1/2 PUBLISH a server sends needs a non-zero Packet Identifier that is not already in use."},
	{"MQTT-2.2.1-5", "2.2.1", "PUBACK, PUBREC, PUBREL and PUBCOMP must carry the Packet Identifier of the PUBLISH they belong to."},
	{"MQTT-2.2.1-6", "2.2.1", "SUBACK and UNSUBACK must carry the Packet Identifier of the SUBSCRIBE or UNSUBSCRIBE they answer."},
	{"MQTT-2.2.2-1", "2.2.2.1", "A packet with no properties must still contain a Property Length of 0."},

	// 3.1 CONNECT
	{"MQTT-3.1.0-1", "3.1", "The first packet a client sends on a new connection must be CONNECT."},
	{"MQTT-3.1.0-2", "3.1", "A server must treat a second CONNECT on the same connection as a Protocol Error and close the connection."},
	{"MQTT-3.1.2-1", "3.1.2.1", "The protocol name must be the string \"MQTT\"; a server refusing the CONNECT may answer CONNACK 0x84 (Unsupported Protocol Version) and must then close the connection."},
	{"MQTT-3.1.2-2", "3.1.2.2", "If the protocol version is not 5 and the server will not accept it, the server may answer CONNACK 0x84 (Unsupported Protocol Version) and must then close the connection."},
	{"MQTT-3.1.2-3", "3.1.2.3", "The server must check that the reserved bit 0 of the CONNECT flags is 0; if it is 1 the packet is malformed."},
	{"MQTT-3.1.2-4", "3.1.2.4", "With Clean Start 1, client and server must throw away any existing session and begin a new one."},
	{"MQTT-3.1.2-5", "3.1.2.4", "With Clean Start 0 and an existing session for the Client Identifier, the server must continue that session."},
	{"MQTT-3.1.2-6", "3.1.2.4", "With Clean Start 0 and no session for the Client Identifier, the server must create a new session."},
	{"MQTT-3.1.2-7", "3.1.2.5", "With Will Flag 1, the server must store the Will Message with the session."},
	{"MQTT-3.1.2-8", "3.1.2.5", "The server must publish the Will Message after the connection closes and the Will Delay has passed or the session has ended, unless a DISCONNECT 0x00 removed it or the client reconnected in time."},
	{"MQTT-3.1.2-9", "3.1.2.5", "With Will Flag 1, the CONNECT payload must contain Will Properties, Will Topic and Will Payload."},
	{"MQTT-3.1.2-10", "3.1.2.5", "The server must delete the stored Will Message once it has been published or the client has sent DISCONNECT with reason code 0x00."},
	{"MQTT-3.1.2-11", "3.1.2.6", "With Will Flag 0, both Will QoS bits must be 0."},
	{"MQTT-3.1.2-12", "3.1.2.6", "With Will Flag 1, Will QoS may be 0, 1 or 2; the value 3 makes the packet malformed."},
	{"MQTT-3.1.2-13", "3.1.2.7", "With Will Flag 0, the Will Retain bit must be 0."},
	{"MQTT-3.1.2-14", "3.1.2.7", "With Will Flag 1 and Will Retain 0, the server must publish the Will Message as a non-retained message."},
	{"MQTT-3.1.2-15", "3.1.2.7", "With Will Flag 1 and Will Retain 1, the server must publish the Will Message as a retained message."},
	{"MQTT-3.1.2-16", "3.1.2.8", "With User Name Flag 0, the payload must not contain a User Name."},
	{"MQTT-3.1.2-17", "3.1.2.8", "With User Name Flag 1, the payload must contain a User Name."},
	{"MQTT-3.1.2-18", "3.1.2.9", "With Password Flag 0, the payload must not contain a Password."},
	{"MQTT-3.1.2-19", "3.1.2.9", "With Password Flag 1, the payload must contain a Password."},
	{"MQTT-3.1.2-20", "3.1.2.10", "With a non-zero Keep Alive, a client with nothing else to send must send PINGREQ before the Keep Alive runs out."},
	{"MQTT-3.1.2-21", "3.1.2.10", "If the CONNACK carries a Server Keep Alive, the client must use that value instead of the Keep Alive it sent."},
	{"MQTT-3.1.2-22", "3.1.2.10", "With a non-zero Keep Alive, the server must drop the connection if nothing arrives from the client within 1.5 times the Keep Alive."},
	{"MQTT-3.1.2-23", "3.1.2.11.2", "When the Session Expiry Interval is above 0, client and server must keep the session state after the connection closes."},
	{"MQTT-3.1.2-24", "3.1.2.11.4", "The server must not send the client a packet larger than the Maximum Packet Size the client gave in CONNECT."},
	{"MQTT-3.1.2-25", "3.1.2.11.4", "A packet too large for the client's Maximum Packet Size must be dropped by the server, which then behaves as if it had sent it."},
	{"MQTT-3.1.2-26", "3.1.2.11.5", "The server must not send a Topic Alias above the Topic Alias Maximum the client gave in CONNECT."},
	{"MQTT-3.1.2-27", "3.1.2.11.5", "If the client's CONNECT had no Topic Alias Maximum, or 0, the server must not send any Topic Alias."},
	{"MQTT-3.1.2-28", "3.1.2.11.6", "If Request Response Information is 0 (or absent), the server must not send Response Information."},
	{"MQTT-3.1.2-29", "3.1.2.11.7", "If Request Problem Information is 0, the server must not put a Reason String or User Property in any packet other than PUBLISH, CONNACK or DISCONNECT."},
	{"MQTT-3.1.2-30", "3.1.2.11.9", "A client that sent an Authentication Method in CONNECT must send only AUTH or DISCONNECT until it has received CONNACK."},
	{"MQTT-3.1.3-1", "3.1.3", "The CONNECT payload fields that are present must come in this order: Client Identifier, Will Properties, Will Topic, Will Payload, User Name, Password."},
	{"MQTT-3.1.3-2", "3.1.3.1", "Client and server must use the Client Identifier to find the session state they keep for each other."},
	{"MQTT-3.1.3-3", "3.1.3.1", "The Client Identifier must always be present, as the first field of the CONNECT payload."},
	{"MQTT-3.1.3-4", "3.1.3.1", "The Client Identifier must be a valid UTF-8 string."},
	{"MQTT-3.1.3-5", "3.1.3.1", "A server must accept Client Identifiers of 1 to 23 bytes made only of 0-9, a-z and A-Z (it may accept others too)."},
	{"MQTT-3.1.3-6", "3.1.3.1", "A server that accepts an empty Client Identifier must give that client a unique one."},
	{"MQTT-3.1.3-7", "3.1.3.1", "After assigning a Client Identifier, the server must handle the CONNECT as if the client had sent it and must return it in CONNACK as Assigned Client Identifier."},
	{"MQTT-3.1.3-8", "3.1.3.1", "A server that rejects the Client Identifier may answer CONNACK 0x85 (Client Identifier not valid) and must close the connection."},
	{"MQTT-3.1.3-9", "3.1.3.2.2", "If the client reconnects to the session before the Will Delay Interval has passed, the server must not send the Will Message."},
	{"MQTT-3.1.3-10", "3.1.3.2.8", "The server must keep the order of the Will's User Properties when it publishes the Will Message."},
	{"MQTT-3.1.3-11", "3.1.3.3", "The Will Topic must be a valid UTF-8 string."},
	{"MQTT-3.1.3-12", "3.1.3.5", "The User Name must be a valid UTF-8 string."},
	{"MQTT-3.1.4-1", "3.1.4", "The server must check that the CONNECT has the format the standard describes and close the connection if it does not."},
	{"MQTT-3.1.4-2", "3.1.4", "If the server's further checks, authentication or authorization of the CONNECT fail, it must close the connection."},
	{"MQTT-3.1.4-3", "3.1.4", "If the Client Identifier is already connected, the server must close the older connection (after sending it DISCONNECT 0x8E, Session taken over)."},
	{"MQTT-3.1.4-4", "3.1.4", "The server must carry out the Clean Start handling described in section 3.1.2.4."},
	{"MQTT-3.1.4-5", "3.1.4", "A server that accepts the connection must answer with CONNACK reason code 0x00 (Success)."},
	{"MQTT-3.1.4-6", "3.1.4", "A server that rejects the CONNECT must not act on anything the client sent after it, except AUTH packets."},

	// 3.2 CONNACK
	{"MQTT-3.2.0-1", "3.2", "The server must not send any packet other than AUTH before a CONNACK with reason code 0x00."},
	{"MQTT-3.2.0-2", "3.2", "The server must not send more than one CONNACK on a connection."},
	{"MQTT-3.2.2-1", "3.2.2.1", "Bits 7-1 of the CONNACK Acknowledge Flags byte are reserved and must be 0."},
	{"MQTT-3.2.2-2", "3.2.2.1.1", "When it accepts a connection with Clean Start 1, the server must set Session Present to 0 (and the reason code to 0x00)."},
	{"MQTT-3.2.2-3", "3.2.2.1.1", "When it accepts a connection with Clean Start 0, the server must set Session Present to 1 if it had a session for the Client Identifier and to 0 otherwise (and the reason code to 0x00)."},
	{"MQTT-3.2.2-4", "3.2.2.1.1", "A client that has no session state and receives Session Present 1 must close the connection."},
	{"MQTT-3.2.2-5", "3.2.2.1.1", "A client that has session state and receives Session Present 0 must discard that state if it stays connected."},
	{"MQTT-3.2.2-6", "3.2.2.1.1", "A CONNACK with a non-zero reason code must have Session Present 0."},
	{"MQTT-3.2.2-7", "3.2.2.2", "After sending a CONNACK with a reason code of 0x80 or above, the server must close the connection."},
	{"MQTT-3.2.2-8", "3.2.2.2", "The CONNACK reason code must be one of the values defined for CONNACK."},
	{"MQTT-3.2.2-9", "3.2.2.3.4", "A server that does not support QoS 1 or 2 must state its highest supported QoS in the CONNACK Maximum QoS property."},
	{"MQTT-3.2.2-10", "3.2.2.3.4", "A server with a reduced Maximum QoS must still accept SUBSCRIBE requests asking for QoS 0, 1 or 2."},
	{"MQTT-3.2.2-11", "3.2.2.3.4", "A client must not send PUBLISH at a QoS higher than the Maximum QoS the server announced."},
	{"MQTT-3.2.2-12", "3.2.2.3.4", "If the Will QoS is higher than the server supports, the server must refuse the connection (preferably with CONNACK 0x9B, QoS not supported) and close it."},
	{"MQTT-3.2.2-13", "3.2.2.3.5", "If the Will Retain is 1 and the server does not support retained messages, it must refuse the connection (preferably with CONNACK 0x9A, Retain not supported) and close it."},
	{"MQTT-3.2.2-14", "3.2.2.3.5", "After receiving Retain Available 0, a client must not send PUBLISH with RETAIN 1."},
	{"MQTT-3.2.2-15", "3.2.2.3.6", "The client must not send the server a packet larger than the Maximum Packet Size the server gave in CONNACK."},
	{"MQTT-3.2.2-16", "3.2.2.3.7", "If the client connected with an empty Client Identifier, the CONNACK must carry an Assigned Client Identifier that no other current session uses."},
	{"MQTT-3.2.2-17", "3.2.2.3.8", "The client must not send a Topic Alias above the Topic Alias Maximum the server gave in CONNACK."},
	{"MQTT-3.2.2-18", "3.2.2.3.8", "If the CONNACK had no Topic Alias Maximum, or 0, the client must not send any Topic Alias."},
	{"MQTT-3.2.2-19", "3.2.2.3.9", "The server must leave out the CONNACK Reason String if it would make the packet exceed the client's Maximum Packet Size."},
	{"MQTT-3.2.2-20", "3.2.2.3.10", "The server must leave out CONNACK User Properties if they would make the packet exceed the client's Maximum Packet Size."},
	{"MQTT-3.2.2-21", "3.2.2.3.14", "If the CONNACK carries a Server Keep Alive, the client must use it instead of the Keep Alive it sent in CONNECT."},
	{"MQTT-3.2.2-22", "3.2.2.3.14", "If the CONNACK carries no Server Keep Alive, the server must use the Keep Alive the client sent in CONNECT."},

	// 3.3 PUBLISH
	{"MQTT-3.3.1-1", "3.3.1.1", "A PUBLISH that is being sent again must have DUP 1."},
	{"MQTT-3.3.1-2", "3.3.1.1", "A QoS 0 PUBLISH must have DUP 0."},
	{"MQTT-3.3.1-3", "3.3.1.1", "The DUP flag of a PUBLISH the server forwards depends only on whether that outgoing packet is a resend, never on the incoming packet's DUP."},
	{"MQTT-3.3.1-4", "3.3.1.2", "A PUBLISH must not have both QoS bits set (QoS 3); such a packet is malformed."},
	{"MQTT-3.3.1-5", "3.3.1.3", "For a client PUBLISH with RETAIN 1, the server must store the message as the topic's retained message, replacing any earlier one."},
	{"MQTT-3.3.1-6", "3.3.1.3", "A PUBLISH with RETAIN 1 and an empty payload must clear the topic's retained message (the PUBLISH itself is still delivered)."},
	{"MQTT-3.3.1-7", "3.3.1.3", "A retained message with an empty payload must not be stored as a retained message."},
	{"MQTT-3.3.1-8", "3.3.1.3", "For a client PUBLISH with RETAIN 0, the server must neither store it as retained nor change the topic's existing retained message."},
	{"MQTT-3.3.1-9", "3.3.1.3", "With Retain Handling 0, the server must send the matching retained messages when the subscription is made."},
	{"MQTT-3.3.1-10", "3.3.1.3", "With Retain Handling 1, the server must send the matching retained messages only if the subscription did not exist before."},
	{"MQTT-3.3.1-11", "3.3.1.3", "With Retain Handling 2, the server must not send retained messages when the subscription is made."},
	{"MQTT-3.3.1-12", "3.3.1.3", "With Retain As Published 0, the server must forward messages with RETAIN 0, whatever the publisher set."},
	{"MQTT-3.3.1-13", "3.3.1.3", "With Retain As Published 1, the server must forward messages with the RETAIN flag the publisher set."},
	{"MQTT-3.3.2-1", "3.3.2.1", "The Topic Name must be the first field of the PUBLISH variable header and must be a valid UTF-8 string."},
	{"MQTT-3.3.2-2", "3.3.2.1", "The Topic Name of a PUBLISH must not contain the wildcards '+' or '#'."},
	{"MQTT-3.3.2-3", "3.3.2.1", "The Topic Name of a PUBLISH the server sends to a subscriber must match that subscription's Topic Filter."},
	{"MQTT-3.3.2-4", "3.3.2.3.2", "The server must pass the Payload Format Indicator on unchanged to every subscriber."},
	{"MQTT-3.3.2-5", "3.3.2.3.3", "Once the Message Expiry Interval has passed, the server must drop every copy it has not yet started to deliver."},
	{"MQTT-3.3.2-6", "3.3.2.3.3", "When forwarding, the server must send the Message Expiry Interval reduced by the time the message waited in the server."},
	{"MQTT-3.3.2-7", "3.3.2.3.4", "Topic Alias mappings live only as long as one connection; a receiver must not carry them over to a new connection."},
	{"MQTT-3.3.2-8", "3.3.2.3.4", "A PUBLISH must not carry Topic Alias 0."},
	{"MQTT-3.3.2-9", "3.3.2.3.4", "A client must not send a Topic Alias greater than the Topic Alias Maximum in the server's CONNACK."},
	{"MQTT-3.3.2-10", "3.3.2.3.4", "A client must accept every Topic Alias from 1 up to the Topic Alias Maximum it sent in CONNECT."},
	{"MQTT-3.3.2-11", "3.3.2.3.4", "A server must not send a Topic Alias greater than the Topic Alias Maximum in the client's CONNECT."},
	{"MQTT-3.3.2-12", "3.3.2.3.4", "A server must accept every Topic Alias from 1 up to the Topic Alias Maximum it sent in CONNACK."},
	{"MQTT-3.3.2-13", "3.3.2.3.5", "The Response Topic must be a valid UTF-8 string."},
	{"MQTT-3.3.2-14", "3.3.2.3.5", "The Response Topic must not contain wildcard characters."},
	{"MQTT-3.3.2-15", "3.3.2.3.5", "The server must pass the Response Topic on unchanged to every subscriber."},
	{"MQTT-3.3.2-16", "3.3.2.3.6", "The server must pass the Correlation Data on unchanged to every subscriber."},
	{"MQTT-3.3.2-17", "3.3.2.3.7", "The server must pass all User Properties of a PUBLISH on unchanged when forwarding it."},
	{"MQTT-3.3.2-18", "3.3.2.3.7", "The server must keep the order of User Properties when forwarding a message."},
	{"MQTT-3.3.2-19", "3.3.2.3.9", "The Content Type must be a valid UTF-8 string."},
	{"MQTT-3.3.2-20", "3.3.2.3.9", "The server must pass the Content Type on unchanged to every subscriber."},
	{"MQTT-3.3.4-1", "3.3.4", "The receiver of a PUBLISH must answer as its QoS requires: nothing for QoS 0, PUBACK for QoS 1, PUBREC for QoS 2."},
	{"MQTT-3.3.4-2", "3.3.4", "When several of a client's subscriptions match a message, the server must deliver it respecting the highest QoS among them."},
	{"MQTT-3.3.4-3", "3.3.4", "If overlapping subscriptions have Subscription Identifiers, the server must send those identifiers with the message they caused."},
	{"MQTT-3.3.4-4", "3.3.4", "If the server sends one copy for overlapping subscriptions, it must include the Subscription Identifiers of all matching subscriptions that have one, in any order."},
	{"MQTT-3.3.4-5", "3.3.4", "If the server sends one copy per matching subscription, each copy must carry that subscription's Subscription Identifier, if it has one."},
	{"MQTT-3.3.4-6", "3.3.4", "A PUBLISH from a client to the server must not contain a Subscription Identifier."},
	{"MQTT-3.3.4-7", "3.3.4", "A client must not have more QoS 1/2 PUBLISH packets awaiting acknowledgement than the server's Receive Maximum."},
	{"MQTT-3.3.4-8", "3.3.4", "A client must not hold back packets other than PUBLISH because its Receive Maximum quota is used up."},
	{"MQTT-3.3.4-9", "3.3.4", "A server must not have more QoS 1/2 PUBLISH packets awaiting acknowledgement than the client's Receive Maximum."},
	{"MQTT-3.3.4-10", "3.3.4", "A server must not hold back packets other than PUBLISH because its Receive Maximum quota is used up."},

	// 3.4 PUBACK
	{"MQTT-3.4.2-1", "3.4.2.1", "A PUBACK must use one of the reason codes defined for PUBACK."},
	{"MQTT-3.4.2-2", "3.4.2.2.2", "The sender must leave out the PUBACK Reason String if it would make the packet exceed the receiver's Maximum Packet Size."},
	{"MQTT-3.4.2-3", "3.4.2.2.3", "The sender must leave out PUBACK User Properties if they would make the packet exceed the receiver's Maximum Packet Size."},

	// 3.5 PUBREC
	{"MQTT-3.5.2-1", "3.5.2.1", "A PUBREC must use one of the reason codes defined for PUBREC."},
	{"MQTT-3.5.2-2", "3.5.2.2.2", "The sender must leave out the PUBREC Reason String if it would make the packet exceed the receiver's Maximum Packet Size."},
	{"MQTT-3.5.2-3", "3.5.2.2.3", "The sender must leave out PUBREC User Properties if they would make the packet exceed the receiver's Maximum Packet Size."},

	// 3.6 PUBREL
	{"MQTT-3.6.1-1", "3.6.1", "The PUBREL fixed-header flags must be 0010; the server must treat any other value as malformed and close the connection."},
	{"MQTT-3.6.2-1", "3.6.2.1", "A PUBREL must use one of the reason codes defined for PUBREL."},
	{"MQTT-3.6.2-2", "3.6.2.2.2", "The sender must leave out the PUBREL Reason String if it would make the packet exceed the receiver's Maximum Packet Size."},
	{"MQTT-3.6.2-3", "3.6.2.2.3", "The sender must leave out PUBREL User Properties if they would make the packet exceed the receiver's Maximum Packet Size."},

	// 3.7 PUBCOMP
	{"MQTT-3.7.2-1", "3.7.2.1", "A PUBCOMP must use one of the reason codes defined for PUBCOMP."},
	{"MQTT-3.7.2-2", "3.7.2.2.2", "The sender must leave out the PUBCOMP Reason String if it would make the packet exceed the receiver's Maximum Packet Size."},
	{"MQTT-3.7.2-3", "3.7.2.2.3", "The sender must leave out PUBCOMP User Properties if they would make the packet exceed the receiver's Maximum Packet Size."},

	// 3.8 SUBSCRIBE
	{"MQTT-3.8.1-1", "3.8.1", "The SUBSCRIBE fixed-header flags must be 0010; the server must treat any other value as malformed and close the connection."},
	{"MQTT-3.8.3-1", "3.8.3", "Every Topic Filter in a SUBSCRIBE must be a valid UTF-8 string."},
	{"MQTT-3.8.3-2", "3.8.3", "A SUBSCRIBE must contain at least one Topic Filter with its options byte; an empty payload is a Protocol Error."},
	{"MQTT-3.8.3-3", "3.8.3.1", "With No Local 1, the server must not send a message back to a connection whose Client Identifier is the publisher's."},
	{"MQTT-3.8.3-4", "3.8.3.1", "Setting No Local to 1 on a shared subscription ($share/...) is a Protocol Error."},
	{"MQTT-3.8.3-5", "3.8.3.1", "The reserved bits 7-6 of each Subscription Options byte must be 0; otherwise the server treats the SUBSCRIBE as malformed."},
	{"MQTT-3.8.4-1", "3.8.4", "The server must answer every SUBSCRIBE with a SUBACK."},
	{"MQTT-3.8.4-2", "3.8.4", "The SUBACK must carry the Packet Identifier of the SUBSCRIBE it answers."},
	{"MQTT-3.8.4-3", "3.8.4", "A SUBSCRIBE with exactly the Topic Filter of an existing non-shared subscription of the session must replace that subscription."},
	{"MQTT-3.8.4-4", "3.8.4", "When a subscription is replaced with Retain Handling 0, the matching retained messages must be sent again, and no message may be lost because of the replacement."},
	{"MQTT-3.8.4-5", "3.8.4", "A SUBSCRIBE with several Topic Filters must be handled like one SUBSCRIBE per filter, answered by a single SUBACK."},
	{"MQTT-3.8.4-6", "3.8.4", "The SUBACK must hold one reason code for each Topic Filter in the SUBSCRIBE."},
	{"MQTT-3.8.4-7", "3.8.4", "Each SUBACK reason code must be either the maximum QoS granted or a failure code."},
	{"MQTT-3.8.4-8", "3.8.4", "Messages sent for a subscription must use the lower of the published QoS and the maximum QoS the server granted."},

	// 3.9 SUBACK
	{"MQTT-3.9.2-1", "3.9.2.1.2", "The server must leave out the SUBACK Reason String if it would make the packet exceed the client's Maximum Packet Size."},
	{"MQTT-3.9.2-2", "3.9.2.1.3", "The server must leave out SUBACK User Properties if they would make the packet exceed the client's Maximum Packet Size."},
	{"MQTT-3.9.3-1", "3.9.3", "The SUBACK reason codes must be in the same order as the Topic Filters of the SUBSCRIBE."},
	{"MQTT-3.9.3-2", "3.9.3", "Each SUBACK reason code must be one of the values defined for SUBACK."},

	// 3.10 UNSUBSCRIBE
	{"MQTT-3.10.1-1", "3.10.1", "The UNSUBSCRIBE fixed-header flags must be 0010; the server must treat any other value as malformed and close the connection."},
	{"MQTT-3.10.3-1", "3.10.3", "Every Topic Filter in an UNSUBSCRIBE must be a valid UTF-8 string."},
	{"MQTT-3.10.3-2", "3.10.3", "An UNSUBSCRIBE must contain at least one Topic Filter; an empty payload is a Protocol Error."},
	{"MQTT-3.10.4-1", "3.10.4", "The server must compare each UNSUBSCRIBE filter character by character with the client's filters and delete the subscription that matches exactly."},
	{"MQTT-3.10.4-2", "3.10.4", "After an UNSUBSCRIBE the server must stop queueing new messages for the removed filters."},
	{"MQTT-3.10.4-3", "3.10.4", "After an UNSUBSCRIBE the server must finish the QoS 1/2 deliveries for those filters that it had already started."},
	{"MQTT-3.10.4-4", "3.10.4", "The server must answer every UNSUBSCRIBE with an UNSUBACK."},
	{"MQTT-3.10.4-5", "3.10.4", "The UNSUBACK must carry the Packet Identifier of the UNSUBSCRIBE, and must be sent even when nothing was unsubscribed."},
	{"MQTT-3.10.4-6", "3.10.4", "An UNSUBSCRIBE with several Topic Filters must be handled like one UNSUBSCRIBE per filter, answered by a single UNSUBACK."},

	// 3.11 UNSUBACK
	{"MQTT-3.11.2-1", "3.11.2.1.2", "The server must leave out the UNSUBACK Reason String if it would make the packet exceed the client's Maximum Packet Size."},
	{"MQTT-3.11.2-2", "3.11.2.1.3", "The server must leave out UNSUBACK User Properties if they would make the packet exceed the client's Maximum Packet Size."},
	{"MQTT-3.11.3-1", "3.11.3", "The UNSUBACK reason codes must be in the same order as the Topic Filters of the UNSUBSCRIBE."},
	{"MQTT-3.11.3-2", "3.11.3", "Each UNSUBACK reason code must be one of the values defined for UNSUBACK."},

	// 3.12 PINGREQ
	{"MQTT-3.12.4-1", "3.12.4", "The server must answer every PINGREQ with a PINGRESP."},

	// 3.14 DISCONNECT
	{"MQTT-3.14.0-1", "3.14", "A server must not send DISCONNECT before it has sent a CONNACK with a reason code below 0x80."},
	{"MQTT-3.14.1-1", "3.14.1", "The DISCONNECT fixed-header flags must be 0; a receiver that sees other values answers with DISCONNECT 0x81 (Malformed Packet)."},
	{"MQTT-3.14.2-1", "3.14.2.1", "The DISCONNECT reason code must be one of the values defined for DISCONNECT."},
	{"MQTT-3.14.2-2", "3.14.2.2.2", "A server must not put a Session Expiry Interval in a DISCONNECT."},
	{"MQTT-3.14.2-3", "3.14.2.2.3", "The sender must leave out the DISCONNECT Reason String if it would make the packet exceed the receiver's Maximum Packet Size."},
	{"MQTT-3.14.2-4", "3.14.2.2.4", "The sender must leave out DISCONNECT User Properties if they would make the packet exceed the receiver's Maximum Packet Size."},
	{"MQTT-3.14.4-1", "3.14.4", "After sending DISCONNECT, the sender must send no more packets on that connection."},
	{"MQTT-3.14.4-2", "3.14.4", "After sending DISCONNECT, the sender must close the connection."},
	{"MQTT-3.14.4-3", "3.14.4", "On a DISCONNECT with reason code 0x00 the server must discard the Will Message without publishing it."},

	// 3.15 AUTH
	{"MQTT-3.15.1-1", "3.15.1", "The AUTH fixed-header flags must be 0000; client and server must treat any other value as malformed and close the connection."},
	{"MQTT-3.15.2-1", "3.15.2.1", "An AUTH must use one of the reason codes defined for AUTH."},
	{"MQTT-3.15.2-2", "3.15.2.2.4", "The sender must leave out the AUTH Reason String if it would make the packet exceed the receiver's Maximum Packet Size."},
	{"MQTT-3.15.2-3", "3.15.2.2.5", "The sender must leave out AUTH User Properties if they would make the packet exceed the receiver's Maximum Packet Size."},

	// 4.1 Session state
	{"MQTT-4.1.0-1", "4.1.1", "Client and server must not discard the session state while the connection is open."},
	{"MQTT-4.1.0-2", "4.1.1", "The server must discard the session state once the connection is closed and the Session Expiry Interval has passed."},

	// 4.2 Network connections
	{"MQTT-4.2-1", "4.2", "Client and server must support at least one transport that carries an ordered, lossless byte stream in both directions."},

	// 4.3 QoS levels and protocol flows
	{"MQTT-4.3.1-1", "4.3.1", "A QoS 0 sender must send the PUBLISH with QoS 0 and DUP 0."},
	{"MQTT-4.3.2-1", "4.3.2", "A QoS 1 sender must use an unused Packet Identifier for each new message."},
	{"MQTT-4.3.2-2", "4.3.2", "A QoS 1 sender must first send the PUBLISH with QoS 1, that Packet Identifier and DUP 0."},
	{"MQTT-4.3.2-3", "4.3.2", "A QoS 1 sender must treat the PUBLISH as unacknowledged until the matching PUBACK arrives."},
	{"MQTT-4.3.2-4", "4.3.2", "A QoS 1 receiver must answer with a PUBACK carrying the PUBLISH's Packet Identifier once it has taken ownership of the message."},
	{"MQTT-4.3.2-5", "4.3.2", "After sending a PUBACK, a QoS 1 receiver must treat a later PUBLISH with the same Packet Identifier as a new message, whatever its DUP flag."},
	{"MQTT-4.3.3-1", "4.3.3", "A QoS 2 sender must use an unused Packet Identifier for each new message."},
	{"MQTT-4.3.3-2", "4.3.3", "A QoS 2 sender must first send the PUBLISH with QoS 2, that Packet Identifier and DUP 0."},
	{"MQTT-4.3.3-3", "4.3.3", "A QoS 2 sender must treat the PUBLISH as unacknowledged until the matching PUBREC arrives."},
	{"MQTT-4.3.3-4", "4.3.3", "A QoS 2 sender must answer a PUBREC whose reason code is below 0x80 with a PUBREL carrying the same Packet Identifier."},
	{"MQTT-4.3.3-5", "4.3.3", "A QoS 2 sender must treat the PUBREL as unacknowledged until the matching PUBCOMP arrives."},
	{"MQTT-4.3.3-6", "4.3.3", "A QoS 2 sender must not send the PUBLISH again once it has sent the PUBREL."},
	{"MQTT-4.3.3-7", "4.3.3", "A QoS 2 sender must not expire the message once the PUBLISH has been sent."},
	{"MQTT-4.3.3-8", "4.3.3", "A QoS 2 receiver must answer with a PUBREC carrying the PUBLISH's Packet Identifier once it has taken ownership of the message."},
	{"MQTT-4.3.3-9", "4.3.3", "After sending a PUBREC with reason code 0x80 or above, the receiver must treat a later PUBLISH with that Packet Identifier as a new message."},
	{"MQTT-4.3.3-10", "4.3.3", "Until the PUBREL arrives, the receiver must answer every repeat of the PUBLISH with a PUBREC and must not deliver the message onward a second time."},
	{"MQTT-4.3.3-11", "4.3.3", "A QoS 2 receiver must answer a PUBREL with a PUBCOMP carrying the same Packet Identifier."},
	{"MQTT-4.3.3-12", "4.3.3", "After sending a PUBCOMP, the receiver must treat a later PUBLISH with that Packet Identifier as a new message."},
	{"MQTT-4.3.3-13", "4.3.3", "A QoS 2 receiver must finish the acknowledgement exchange even if it has expired the message."},

	// 4.4 Message delivery retry
	{"MQTT-4.4.0-1", "4.4", "On reconnecting with Clean Start 0 to an existing session, both sides must resend unacknowledged QoS 1/2 PUBLISH and PUBREL packets with their original Packet Identifiers, and must not resend at any other time."},
	{"MQTT-4.4.0-2", "4.4", "A PUBLISH answered by a PUBACK or PUBREC with reason code 0x80 or above counts as acknowledged and must not be sent again."},

	// 4.5 Message receipt
	{"MQTT-4.5.0-1", "4.5", "When the server takes ownership of a message, it must add it to the session state of every client with a matching subscription."},
	{"MQTT-4.5.0-2", "4.5", "A client must acknowledge every PUBLISH it receives as its QoS requires, even if it chooses not to process the message."},

	// 4.6 Message ordering
	{"MQTT-4.6.0-1", "4.6", "A client must resend QoS 1/2 PUBLISH packets in the order they were first sent."},
	{"MQTT-4.6.0-2", "4.6", "A client must send PUBACKs in the order the QoS 1 PUBLISHes arrived."},
	{"MQTT-4.6.0-3", "4.6", "A client must send PUBRECs in the order the QoS 2 PUBLISHes arrived."},
	{"MQTT-4.6.0-4", "4.6", "A client must send PUBRELs in the order the PUBRECs arrived."},
	{"MQTT-4.6.0-5", "4.6", "For an Ordered Topic, the server must forward the messages of each publishing client (per topic and QoS) in the order it received them."},
	{"MQTT-4.6.0-6", "4.6", "By default the server must treat every topic as an Ordered Topic when forwarding to non-shared subscriptions."},

	// 4.7 Topic Names and Topic Filters
	{"MQTT-4.7.0-1", "4.7.1", "Wildcards ('+', '#') may appear in Topic Filters only, never in a Topic Name."},
	{"MQTT-4.7.1-1", "4.7.1.2", "'#' must stand alone or right after a '/', and must be the last character of the Topic Filter."},
	{"MQTT-4.7.1-2", "4.7.1.3", "'+' must fill a whole level of the Topic Filter (a/+/b is valid, a/b+ is not)."},
	{"MQTT-4.7.2-1", "4.7.2", "The server must not match Topic Names that start with '$' against Topic Filters that start with '#' or '+'."},
	{"MQTT-4.7.3-1", "4.7.3", "Topic Names and Topic Filters must be at least one character long."},
	{"MQTT-4.7.3-2", "4.7.3", "Topic Names and Topic Filters must not contain the null character U+0000."},
	{"MQTT-4.7.3-3", "4.7.3", "Topic Names and Topic Filters must not exceed 65,535 bytes once UTF-8 encoded."},
	{"MQTT-4.7.3-4", "4.7.3", "When matching subscriptions the server must not normalize topics or replace characters it does not recognize."},

	// 4.8 Shared Subscriptions
	{"MQTT-4.8.2-1", "4.8.2", "A shared subscription filter must start with \"$share/\" followed by a ShareName at least one character long."},
	{"MQTT-4.8.2-2", "4.8.2", "The ShareName must not contain '/', '+' or '#', and must be followed by a '/' and then a Topic Filter."},
	{"MQTT-4.8.2-3", "4.8.2", "When delivering to a member of a shared subscription, the server must respect the QoS granted to that client."},
	{"MQTT-4.8.2-4", "4.8.2", "If the connection to the chosen shared subscriber breaks during a QoS 2 delivery, the server must complete the delivery to that client when it reconnects."},
	{"MQTT-4.8.2-5", "4.8.2", "If that client's session ends before it reconnects, the server must not send the interrupted QoS 2 message to another subscriber."},
	{"MQTT-4.8.2-6", "4.8.2", "If a client answers a shared-subscription PUBLISH with a PUBACK or PUBREC of 0x80 or above, the server must drop the message and not offer it to another subscriber."},

	// 4.9 Flow control
	{"MQTT-4.9.0-1", "4.9", "Client and server must start their send quota at a non-zero value no larger than the peer's Receive Maximum."},
	{"MQTT-4.9.0-2", "4.9", "When the send quota reaches zero, no further QoS 1/2 PUBLISH may be sent until an acknowledgement frees a slot."},
	{"MQTT-4.9.0-3", "4.9", "Even with a send quota of zero, client and server must keep processing and answering all other packets."},

	// 4.12 Enhanced authentication
	{"MQTT-4.12.0-1", "4.12", "If the server does not support the client's Authentication Method, it may send CONNACK 0x8C or 0x87 and must close the connection."},
	{"MQTT-4.12.0-2", "4.12", "An AUTH the server sends to ask for more authentication data must carry reason code 0x18 (Continue authentication)."},
	{"MQTT-4.12.0-3", "4.12", "The client's AUTH in reply to the server's AUTH must carry reason code 0x18 (Continue authentication)."},
	{"MQTT-4.12.0-4", "4.12", "A server that rejects the authentication may send a CONNACK of 0x80 or above and must close the connection."},
	{"MQTT-4.12.0-5", "4.12", "If the CONNECT had an Authentication Method, every AUTH and a successful CONNACK must carry the same Authentication Method."},
	{"MQTT-4.12.0-6", "4.12", "If the CONNECT had no Authentication Method, the server must not send AUTH, nor an Authentication Method in CONNACK."},
	{"MQTT-4.12.0-7", "4.12", "If the CONNECT had no Authentication Method, the client must not send AUTH."},
	{"MQTT-4.12.1-1", "4.12.1", "A re-authentication AUTH (reason code 0x19) must carry the Authentication Method used to authenticate the connection."},
	{"MQTT-4.12.1-2", "4.12.1", "If re-authentication fails, the client or server must close the connection (preferably after a DISCONNECT with a suitable reason code)."},

	// 4.13 Handling errors
	{"MQTT-4.13.1-1", "4.13.1", "A server that detects a Malformed Packet or a Protocol Error for which a reason code is defined must close the connection."},
	{"MQTT-4.13.2-1", "4.13.2", "When a CONNACK or DISCONNECT has a reason code of 0x80 or above, the connection must be closed, whether or not that packet was actually sent."},

	// 6 WebSocket transport
	{"MQTT-6.0.0-1", "6", "Over WebSocket, MQTT packets must travel in binary frames; a receiver that gets any other data frame must close the connection."},
	{"MQTT-6.0.0-2", "6", "Over WebSocket, a receiver must not assume that MQTT packets line up with frame boundaries."},
	{"MQTT-6.0.0-3", "6", "Over WebSocket, the client must offer \"mqtt\" among its subprotocols."},
	{"MQTT-6.0.0-4", "6", "Over WebSocket, the server must select and return the subprotocol \"mqtt\"."},
}

var ruleIndex = func() map[string]int {
	m := make(map[string]int, len(rules))
	for i, r := range rules {
		m[r.ID] = i
	}
	return m
}()

// LookupRule returns the rule with the given ID. It accepts the ID as the standard prints it,
// with or without the square brackets and in any letter case: "MQTT-3.3.2-8", "[MQTT-3.3.2-8]".
func LookupRule(id string) (Rule, bool) {
	id = strings.TrimSpace(id)
	id = strings.TrimSuffix(strings.TrimPrefix(id, "["), "]")
	if len(id) >= 5 && strings.EqualFold(id[:5], "MQTT-") {
		id = "MQTT-" + id[5:]
	}
	i, ok := ruleIndex[id]
	if !ok {
		return Rule{}, false
	}
	return rules[i], true
}

// Rules returns every rule in the order of the standard's sections. The slice is a copy.
func Rules() []Rule { return slices.Clone(rules) }
