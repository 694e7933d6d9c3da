package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/google/gopacket"
	"github.com/mqscope/mqscope/capture"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/spf13/cobra"
)

// captureOptions are the options of mqscope capture.
type captureOptions struct {
	io    *streams
	iface string
	out   outputOptions
	ready func() // called once capturing (tests)
	ui    uiOptions
}

func newCaptureCmd(io *streams) *cobra.Command {
	o := &captureOptions{io: io}
	cmd := &cobra.Command{
		Use:   "capture -i IFACE",
		Short: "Capture and explain MQTT traffic live (Linux)",
		Long: `Capture packets on a network interface and explain every MQTT connection as it happens,
with the same output and filters as mqscope read. Stop with Ctrl-C.

Capturing uses an AF_PACKET socket directly (no libpcap) and needs root or the CAP_NET_RAW
capability (sudo setcap cap_net_raw+ep $(which mqscope)). The loopback interface works.
--write records every packet of the connections found to carry MQTT (on any port, over
WebSocket too) or TLS, whole and whatever --filter prints, as pcapng, for reading again
later with mqscope read or Wireshark.`,
		Example: `  sudo mqscope capture -i eth0
  sudo mqscope capture -i lo --port 1884 --format jsonl --filter 'level == "error"'
  sudo mqscope capture -i eth0 --write session.pcapng --summary`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("capture takes no arguments (got %q); name the interface with -i", args)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.iface == "" {
				return usageError{errors.New("capture needs an interface: -i IFACE (e.g. -i lo)")}
			}
			if err := o.out.check(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if o.ui.on {
				if err := checkUI(cmd); err != nil {
					return err
				}
				return runCaptureUI(ctx, o)
			}
			return runCapture(ctx, o)
		},
	}
	cmd.Flags().StringVarP(&o.iface, "interface", "i", "", "capture on network interface `IFACE`")
	o.out.addFlags(cmd.Flags())
	cmd.Flags().StringVar(&o.out.write, "write", "", "record the packets of the MQTT and TLS connections to pcapng `FILE`")
	o.ui.addFlags(cmd.Flags(), true)
	completeOutputFlags(cmd)
	_ = cmd.RegisterFlagCompletionFunc("interface", completeInterfaces)
	return cmd
}

// runCapture captures until ctx is done.
func runCapture(ctx context.Context, o *captureOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	keys, err := o.out.loadKeys(o.io.Err, true)
	if err != nil {
		return err
	}
	res, err := newOutput(&o.out, o.io.Out, o.io.Color.colorFor(o.io.Out), cancel, 0)
	if err != nil {
		return err
	}
	var rec func(int, gopacket.CaptureInfo, []byte)
	var pw *pcapng.PacketWriter
	if o.out.write != "" {
		f, err := createPrivate(o.out.write, false, o.io.Err) // CONNECTs with passwords: 0600
		if err != nil {
			return err
		}
		defer f.Close()
		if pw, err = pcapng.NewPacketWriter(f); err != nil {
			return err
		}
		var werr error
		rec = func(link int, ci gopacket.CaptureInfo, data []byte) {
			if werr == nil {
				if werr = pw.WritePacket(link, ci.Timestamp, data, ci.Length); werr != nil {
					cancel()
				}
			}
		}
	}
	src, err := capture.OpenLive(o.iface)
	if err != nil {
		return err
	}
	defer src.Close()
	if o.ready != nil {
		o.ready()
	}
	src.Options = capture.Options{Ports: ports(capture.DefaultPort, o.out.ports),
		TLSPorts: ports(capture.DefaultTLSPort, o.out.tlsPorts), Record: rec, TLSKeys: keys, Idle: o.out.idle}
	capErr := src.Run(ctx, res.in)
	if err := res.close(); err != nil {
		return err
	}
	noteLeftOut(o.io.Err, src.Analyzer().Stats())
	noteDecryption(o.io.Err, keys, src.Analyzer().Stats())
	reportFilterErrors(o.io.Err, res.filter)
	// As tcpdump does: how much was seen, and whether the kernel kept up.
	if dropped, err := src.Dropped(); err != nil {
		fmt.Fprintf(o.io.Err, "mqscope: %s captured on %s (kernel drops unknown: %v)\n", inspect.Plural(src.Packets, "packet"), o.iface, err)
	} else if dropped > 0 {
		fmt.Fprintf(o.io.Err, "mqscope: %s captured on %s; the kernel dropped %d (its buffer was full), so connections may show lost bytes\n", inspect.Plural(src.Packets, "packet"), o.iface, dropped)
	} else {
		fmt.Fprintf(o.io.Err, "mqscope: %s captured on %s, none dropped\n", inspect.Plural(src.Packets, "packet"), o.iface)
	}
	if pw != nil {
		if err := pw.Flush(); err != nil {
			return err
		}
		if err := embedSecrets(o.io.Err, o.out.write, src.Analyzer()); err != nil {
			return err
		}
	}
	return capErr
}
