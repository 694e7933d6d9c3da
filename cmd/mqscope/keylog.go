package main

import (
	"fmt"
	"io"
	"os"

	"github.com/mqscope/mqscope/capture"
	"github.com/mqscope/mqscope/capture/tlsdecrypt"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/pcapng"
)

// keylogEnv names the key log that TLS libraries write to (NSS, OpenSSL, Go, Python, curl).
const keylogEnv = "SSLKEYLOGFILE"

// loadKeys reads the key logs of --keylog, or of SSLKEYLOGFILE when none is given (said on
// w). It returns nil when there is none. With follow (live capture), the files are read
// again whenever a connection has no secrets yet: programs append to them as they connect.
func (o *outputOptions) loadKeys(w io.Writer, follow bool) (*tlsdecrypt.Keys, error) {
	names := o.keylogs
	if len(names) == 0 {
		env := os.Getenv(keylogEnv)
		if env == "" {
			return nil, nil
		}
		names = []string{env}
		fmt.Fprintf(w, "mqscope: decrypting TLS with the key log %s named by %s\n", env, keylogEnv)
	}
	keys := tlsdecrypt.NewKeys()
	if !follow {
		for _, name := range names {
			f, err := os.Open(name)
			if err != nil {
				return nil, fmt.Errorf("--keylog: %w", err)
			}
			_, err = keys.Read(f, name)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("--keylog: %w", err)
			}
		}
		return keys, nil
	}
	var files []*tlsdecrypt.LogFile
	for _, name := range names {
		f := tlsdecrypt.NewLogFile(name)
		if _, err := f.Update(keys); err != nil {
			return nil, fmt.Errorf("--keylog: %w", err)
		}
		files = append(files, f)
	}
	var reported bool
	keys.SetRefresh(func() {
		for _, f := range files {
			if _, err := f.Update(keys); err != nil && !reported {
				reported = true // once: the capture goes on with the secrets it has
				fmt.Fprintf(w, "mqscope: reading the key log again: %v\n", err)
			}
		}
	})
	return keys, nil
}

// noteDecryption says how many TLS connections the key logs (given, or embedded in the
// capture) decrypted.
func noteDecryption(w io.Writer, keys *tlsdecrypt.Keys, st capture.Stats) {
	if keys == nil && st.Secrets == 0 {
		return
	}
	if st.Secrets > 0 {
		fmt.Fprintf(w, "mqscope: TLS secrets read from the capture's decryption secrets blocks: %d\n", st.Secrets)
	}
	fmt.Fprintf(w, "mqscope: TLS connections decrypted: %d; not decrypted: %d", st.Decrypted, st.NotDecrypted)
	if st.NotDecrypted > 0 {
		fmt.Fprint(w, " (each says why)")
	}
	fmt.Fprintln(w)
}

// embedSecrets puts the TLS secrets of the connections written to file into it, in a
// Decryption Secrets Block, so that it opens decrypted in mqscope and Wireshark; and warns,
// as the file now holds keys (it is private: createPrivate).
func embedSecrets(w io.Writer, file string, a *capture.Analyzer) error {
	keys, randoms := a.TLSKeys(), a.TLSRandoms()
	if keys == nil || len(randoms) == 0 {
		return nil
	}
	if err := pcapng.InjectSecrets(file, pcapng.SecretsTLS, keys.AppendKeyLog(nil, randoms)); err != nil {
		return fmt.Errorf("--write: embedding the TLS secrets: %w", err)
	}
	fmt.Fprintf(w, "mqscope: warning: %s holds the TLS secrets of the %s written, so that it opens decrypted: whoever has the file can read them\n",
		file, inspect.Plural(len(randoms), "connection"))
	return nil
}
