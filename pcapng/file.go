package pcapng

import (
	"bufio"
	"errors"
	"os"
)

// streamFile is a StreamWriter on a file of its own, created 0600 (what is recorded may hold
// passwords or keys): the Recorder's and the WireRecorder's.
type streamFile struct {
	f  *os.File
	bw *bufio.Writer
	sw *StreamWriter
}

// createStreamFile creates (or truncates) path.
func createStreamFile(path string) (streamFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return streamFile{}, err
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	sw, err := NewStreamWriter(bw)
	if err != nil {
		f.Close()
		return streamFile{}, err
	}
	return streamFile{f: f, bw: bw, sw: sw}, nil
}

// close writes out what is buffered and closes the file.
func (s streamFile) close() error {
	return errors.Join(s.sw.Flush(), s.bw.Flush(), s.f.Close())
}
