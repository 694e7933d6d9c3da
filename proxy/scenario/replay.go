package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/mqscope/mqscope/internal/mqttclient"
	"github.com/mqscope/mqscope/internal/replay"
)

// replay plays the captured session rp chooses through the proxy at addr, as the device, and
// writes what it did to out: the packets sent and received, what was rewritten, and the first
// place where the broker answered otherwise than in the capture. The expectations judge the
// new session; a divergence alone is not a failure.
func (r *run) replay(ctx context.Context, rp *ReplayDevice, addr string, out io.Writer) error {
	if r.o.Sessions == nil {
		return errors.New("replay: this run cannot read captures")
	}
	ss, err := r.o.Sessions(ctx, rp.path, replay.Selector{Conn: rp.Conn, ClientID: rp.ClientID})
	if err != nil {
		return fmt.Errorf("replay %s: %w", rp.Capture, err)
	}
	if len(ss) == 0 {
		return fmt.Errorf("replay %s: no session with a CONNECT matches (conn %d, client_id %q)", rp.Capture, rp.Conn, rp.ClientID)
	}
	s := ss[0]
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	c := mqttclient.New(conn, nil)
	defer c.Close()
	res, err := replay.AsClient(ctx, s, c, replay.Options{Speed: rp.Speed})
	if err != nil && ctx.Err() != nil {
		// The run ended (every expectation decided) before the replay did.
		fmt.Fprintf(out, "replay of connection %d of %s stopped: the run ended\n", s.Conn, rp.Capture)
		return nil
	}
	if err != nil {
		return fmt.Errorf("replay of connection %d of %s: %w", s.Conn, rp.Capture, err)
	}
	fmt.Fprintf(out, "replayed connection %d of %s (client id %q): %d packets sent, %d received\n", s.Conn, rp.Capture, s.ClientID, res.Sent, res.Received)
	for _, m := range res.Remapped {
		fmt.Fprintf(out, "  rewritten: %s\n", m)
	}
	if res.Divergence != nil {
		fmt.Fprintf(out, "  differs from the capture: %s\n", res.Divergence)
	} else {
		fmt.Fprintln(out, "  the broker answered as in the capture")
	}
	return nil
}
