package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mqscope/mqscope/proxy/fault"
)

// faultReporter writes each fault applied to w: a line of text, or with jsonl a JSON line of
// kind "fault". Connections report from their own goroutines; lines never interleave.
func faultReporter(w io.Writer, jsonl bool) func(fault.Applied) {
	var mu sync.Mutex
	return func(a fault.Applied) {
		var line []byte
		if jsonl {
			line, _ = json.Marshal(struct {
				Kind      string    `json:"kind"`
				Time      time.Time `json:"time"`
				Conn      int       `json:"conn"`
				Dir       string    `json:"dir"`
				Rule      string    `json:"rule"`
				Packet    string    `json:"packet"`
				Did       string    `json:"did"`
				Before    int       `json:"bytes_before"`
				After     int       `json:"bytes_after"`
				Used      string    `json:"used,omitempty"`
				Closed    bool      `json:"closed,omitempty"`
				Malformed bool      `json:"malformed,omitempty"`
			}{"fault", a.Time.UTC(), a.Conn, a.Dir.String(), a.Rule, a.Type.String(), a.Did, a.Before, a.After, a.Used, a.Closed, a.Malformed})
			line = append(line, '\n')
		} else {
			line = []byte(fmt.Sprintf("mqscope: %s\n", a))
		}
		mu.Lock()
		defer mu.Unlock()
		w.Write(line)
	}
}
