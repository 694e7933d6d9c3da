package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Files that hold passwords or keys (recordings of MQTT connections, TLS key logs, the CA's
// key) are readable by their owner alone: created 0600, and an existing file that others could
// read is made so, and the user told.

// createPrivate opens name for writing, truncated, or appended to when appending, created with
// mode 0600; an existing regular file readable or writable by others is set to 0600 and a
// note says so on w.
func createPrivate(name string, appending bool, w io.Writer) (*os.File, error) {
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appending {
		flag = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(name, flag, 0o600)
	if err != nil {
		return nil, err
	}
	if err := tighten(f, name, w); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// makePrivate sets an existing regular file that others could read to 0600 and says so on w,
// before something else opens it for writing (a file that does not exist yet is left to be
// created 0600).
func makePrivate(name string, w io.Writer) error {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return tighten(f, name, w)
}

// tighten makes the open file f 0600 if it is a regular file others have access to.
func tighten(f *os.File, name string, w io.Writer) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 == 0 {
		return nil // a pipe or device (/dev/stdout) is not ours to change
	}
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("%s is open to others (mode %04o) and will hold secrets; making it 0600: %w", name, fi.Mode().Perm(), err)
	}
	fmt.Fprintf(w, "mqscope: %s was open to others (mode %04o); it will hold secrets, so it is now 0600\n", name, fi.Mode().Perm())
	return nil
}

// privateDir checks a directory that is to hold a private key: one that does not exist yet is
// left to be created 0700; an existing one others can enter is made 0700 (and the user told)
// when it holds nothing but the files in ours, and refused otherwise, since changing the mode
// of a directory that also holds other things (a home, /tmp) is not mqscope's to do.
func privateDir(dir string, ours []string, w io.Writer) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	perm := fi.Mode().Perm()
	if perm&0o077 == 0 {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !slices.Contains(ours, e.Name()) {
			return fmt.Errorf("%s is open to others (mode %04o) and holds other files (%s): the CA's key needs a directory of its own; give a new one, or chmod 700 it", dir, perm, e.Name())
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("%s is open to others (mode %04o); making it 0700: %w", dir, perm, err)
	}
	fmt.Fprintf(w, "mqscope: %s was open to others (mode %04o); it holds the CA's key, so it is now 0700\n", filepath.Clean(dir), perm)
	return nil
}
