package pcapng

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// SecretsTLS is the secrets type of a TLS key log (the NSS key log format that SSLKEYLOGFILE
// names) in a Decryption Secrets Block.
const SecretsTLS = 0x544c534b

// secretsBlock returns a Decryption Secrets Block holding data, in byte order bo.
func secretsBlock(bo binary.ByteOrder, kind uint32, data []byte) []byte {
	body := pad4(append([]byte(nil), data...))
	blen := 20 + len(body)
	b := make([]byte, blen)
	bo.PutUint32(b, 0x0000000A)
	bo.PutUint32(b[4:], uint32(blen))
	bo.PutUint32(b[8:], kind)
	bo.PutUint32(b[12:], uint32(len(data)))
	copy(b[16:], body)
	bo.PutUint32(b[blen-4:], uint32(blen))
	return b
}

// InjectSecrets rewrites the pcapng file at path with a Decryption Secrets Block holding
// data right after its section header, before any packet, as editcap --inject-secrets does:
// Wireshark and mqscope read then decrypt its connections without being given the secrets.
// The file keeps its mode (it now holds keys: make it private first).
func InjectSecrets(path string, kind uint32, data []byte) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	r := bufio.NewReader(in)
	head, err := r.Peek(12)
	if err != nil || binary.LittleEndian.Uint32(head) != 0x0A0D0D0A {
		return fmt.Errorf("%s: not a pcapng file", path)
	}
	bo := binary.ByteOrder(binary.LittleEndian)
	if binary.BigEndian.Uint32(head[8:]) == 0x1A2B3C4D {
		bo = binary.BigEndian
	}
	shb := make([]byte, bo.Uint32(head[4:]))
	if len(shb) < 28 {
		return fmt.Errorf("%s: damaged section header", path)
	}
	if _, err := io.ReadFull(r, shb); err != nil {
		return fmt.Errorf("%s: the section header: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mqscope-secrets-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing to remove
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	w := bufio.NewWriterSize(tmp, 1<<20)
	w.Write(shb)
	w.Write(secretsBlock(bo, kind, data))
	if _, err := io.Copy(w, r); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
