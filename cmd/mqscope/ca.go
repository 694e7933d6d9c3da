package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/mqscope/mqscope/proxy"
)

// caInitOptions are the options of mqscope ca init.
type caInitOptions struct {
	io    *streams
	dir   string
	force bool
}

func newCACmd(io *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Manage the local CA the proxy's TLS certificates come from",
		Args:  cobra.NoArgs,
	}
	o := &caInitOptions{io: io}
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create the local CA (its key is written 0600)",
		Long: `Create a certificate authority for 'mqscope proxy --listen tls://...': the proxy mints from
it a certificate for whatever server name a device asks for. Make the device trust the CA's
certificate (the printed ca.pem), and it will accept the proxy in place of its broker.
Keep ca-key.pem private: anyone with it can impersonate any server to that device.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCAInit(o) },
	}
	initCmd.Flags().StringVar(&o.dir, "dir", "", "create the CA in `DIR` (default: the user's config directory, mqscope/ca)")
	initCmd.Flags().BoolVar(&o.force, "force", false, "replace an existing CA")
	cmd.AddCommand(initCmd)
	return cmd
}

func runCAInit(o *caInitOptions) error {
	dir := o.dir
	if dir == "" {
		var err error
		if dir, err = proxy.DefaultCADir(); err != nil {
			return err
		}
	}
	if err := privateDir(dir, []string{proxy.CACertFile, proxy.CAKeyFile}, o.io.Err); err != nil {
		return err
	}
	ca, err := proxy.InitCA(dir, o.force)
	if errors.Is(err, proxy.ErrCAExists) {
		return usageError{fmt.Errorf("%w (use --force to replace it)", err)}
	}
	if err != nil {
		return err
	}
	cert, key := filepath.Join(ca.Dir, proxy.CACertFile), filepath.Join(ca.Dir, proxy.CAKeyFile)
	_, err = fmt.Fprintf(o.io.Out, `Created the mqscope CA %q.
  certificate: %s
  private key: %s (mode 0600: keep it private)

Make the device (or client) trust the certificate, then point it at the proxy:
  mosquitto_pub/mosquitto_sub:  --cafile %s
  paho / Go crypto/tls:         add it to RootCAs
  Linux system store:           sudo cp %s /usr/local/share/ca-certificates/mqscope.crt && sudo update-ca-certificates
  macOS:                        sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain %s
  firmware:                     embed it where the broker's CA certificate goes
and run: mqscope proxy --listen tls://127.0.0.1:8883 --upstream tls://BROKER:8883
`, ca.Cert.Subject.CommonName, cert, key, cert, cert, cert)
	return err
}
