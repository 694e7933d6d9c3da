package capture

import (
	"encoding/binary"

	"github.com/mqscope/mqscope/pcapng"
)

// Why a packet was not handed to TCP reassembly.
const (
	skipNone = iota
	skipLink
	skipNotIP
	skipNotTCP
	skipFragment
	skipTruncated
)

// ipPacket finds the IP packet in a frame of the given link type (a pcap LINKTYPE_ number;
// 20 is taken for 276, LINUX_SLL2, whose number gopacket's byte-sized LinkType truncates).
func ipPacket(link int, b []byte) ([]byte, int) {
	var etype uint16
	switch link {
	case pcapng.LinkEthernet:
		if len(b) < 14 {
			return nil, skipTruncated
		}
		etype, b = binary.BigEndian.Uint16(b[12:]), b[14:]
	case pcapng.LinkSLL:
		if len(b) < 16 {
			return nil, skipTruncated
		}
		etype, b = binary.BigEndian.Uint16(b[14:]), b[16:]
	case pcapng.LinkSLL2, pcapng.LinkSLL2 & 0xff:
		if len(b) < 20 {
			return nil, skipTruncated
		}
		etype, b = binary.BigEndian.Uint16(b), b[20:]
	case pcapng.LinkNull, pcapng.LinkLoop:
		if len(b) < 4 {
			return nil, skipTruncated
		}
		// The address family, in the capturing host's byte order (NULL) or big-endian (LOOP).
		fam := binary.LittleEndian.Uint32(b)
		if fam > 0xffff {
			fam = binary.BigEndian.Uint32(b)
		}
		b = b[4:]
		switch fam {
		case 2:
			etype = 0x0800
		case 10, 24, 28, 30:
			etype = 0x86dd
		default:
			return nil, skipNotIP
		}
	case pcapng.LinkRaw, 12, 14, pcapng.LinkIPv4, pcapng.LinkIPv6:
		if len(b) == 0 {
			return nil, skipTruncated
		}
		switch b[0] >> 4 {
		case 4:
			etype = 0x0800
		case 6:
			etype = 0x86dd
		default:
			return nil, skipNotIP
		}
	default:
		return nil, skipLink
	}
	// VLAN tags (802.1Q, 802.1ad, QinQ), any number.
	for etype == 0x8100 || etype == 0x88a8 || etype == 0x9100 {
		if len(b) < 4 {
			return nil, skipTruncated
		}
		etype, b = binary.BigEndian.Uint16(b[2:]), b[4:]
	}
	if etype != 0x0800 && etype != 0x86dd {
		return nil, skipNotIP
	}
	return b, skipNone
}

// tcpSegment returns the source and destination addresses (4 or 16 bytes each) and the TCP
// segment of an IP packet.
func tcpSegment(ip []byte) (src, dst, seg []byte, why int) {
	if len(ip) < 1 {
		return nil, nil, nil, skipTruncated
	}
	switch ip[0] >> 4 {
	case 4:
		if len(ip) < 20 {
			return nil, nil, nil, skipTruncated
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < 20 || total < ihl || len(ip) < ihl {
			return nil, nil, nil, skipTruncated
		}
		if total < len(ip) {
			ip = ip[:total] // Ethernet padding
		}
		if ip[9] != 6 {
			return nil, nil, nil, skipNotTCP
		}
		if frag := binary.BigEndian.Uint16(ip[6:]); frag&0x3fff != 0 { // MF or an offset
			return nil, nil, nil, skipFragment
		}
		return ip[12:16], ip[16:20], ip[ihl:], skipNone
	case 6:
		if len(ip) < 40 {
			return nil, nil, nil, skipTruncated
		}
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if 40+plen < len(ip) && plen != 0 {
			ip = ip[:40+plen]
		}
		next, rest := ip[6], ip[40:]
		for {
			switch next {
			case 6:
				return ip[8:24], ip[24:40], rest, skipNone
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if len(rest) < 8 {
					return nil, nil, nil, skipTruncated
				}
				n := (int(rest[1]) + 1) * 8
				if len(rest) < n {
					return nil, nil, nil, skipTruncated
				}
				next, rest = rest[0], rest[n:]
			case 44:
				return nil, nil, nil, skipFragment
			default:
				return nil, nil, nil, skipNotTCP
			}
		}
	}
	return nil, nil, nil, skipNotIP
}
