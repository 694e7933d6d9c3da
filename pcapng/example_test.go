package pcapng_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"

	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// A proxy records what it relays: each connection is opened once, then the bytes of each
// direction are written as they pass, and the connection is closed by whoever ended it.
func ExampleStreamWriter() {
	var file bytes.Buffer // an *os.File in practice
	sw, err := pcapng.NewStreamWriter(&file)
	if err != nil {
		panic(err)
	}
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	conn, err := sw.Open(netip.MustParseAddrPort("192.0.2.10:50000"), netip.MustParseAddrPort("192.0.2.1:1883"), t)
	if err != nil {
		panic(err)
	}
	connect := []byte{0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 'x'}
	_ = conn.Write(stream.C2S, t.Add(time.Millisecond), connect)
	_ = conn.Write(stream.S2C, t.Add(2*time.Millisecond), []byte{0x20, 0x02, 0x00, 0x00})
	_ = conn.Close(stream.C2S, t.Add(3*time.Millisecond))
	if err := sw.Flush(); err != nil {
		panic(err)
	}
	fmt.Println(file.Len() > 0)
	// Output: true
}
