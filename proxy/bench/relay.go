package main

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/mqscope/mqscope/proxy"
)

// The relay is the floor any proxy on this machine stands on: a separate process that copies
// bytes both ways with io.Copy, no decoding, no inspection, no output. Whatever it costs in
// throughput and latency, a proxy in its own process costs at least that here, so the bench
// prints it beside mqscope's figures.

// relayEnv names the environment variable that makes the bench binary a relay: LISTEN UPSTREAM.
const relayEnv = "MQSCOPE_BENCH_RELAY"

// startRelay runs this binary again as a relay from a free port to upstream.
func startRelay(upstream string) (addr string, stop func(), err error) {
	addr = freeAddr()
	_, stop, err = startSelf(relayEnv+"="+addr+" "+upstream, addr, "relay")
	return addr, stop, err
}

// startSelf runs this binary again with env added, until stop, and waits until addr listens.
func startSelf(env, addr, what string) (pid int, stop func(), err error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return startProcess(cmd, addr, what)
}

// startProcess starts cmd and waits until addr listens; stop ends it (SIGTERM) and may be
// called more than once.
func startProcess(cmd *exec.Cmd, addr, what string) (pid int, stop func(), err error) {
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		})
	}
	if !waitListening(addr) {
		stop()
		return 0, nil, errors.New("the " + what + " did not start")
	}
	return cmd.Process.Pid, stop, nil
}

// serveRelay accepts on listen and relays each connection to upstream until killed.
func serveRelay(listen, upstream string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				return
			}
			defer u.Close()
			done := make(chan struct{})
			go func() { relayCopy(u, c); close(done) }()
			relayCopy(c, u)
			<-done
		}()
	}
}

// relayCopy copies src to dst, then half-closes dst.
func relayCopy(dst, src net.Conn) {
	io.Copy(dst, src)
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// brokerEnv names the environment variable that makes the bench binary the embedded broker
// alone, listening on the address it holds.
const brokerEnv = "MQSCOPE_BENCH_BROKER"

// startBrokerProcess runs this binary again as the embedded broker alone on a free port.
func startBrokerProcess() (addr string, pid int, stop func(), err error) {
	addr = freeAddr()
	pid, stop, err = startSelf(brokerEnv+"="+addr, addr, "broker")
	return addr, pid, stop, err
}

// serveBroker runs the embedded broker, as `mqscope proxy --upstream embedded` configures it,
// on addr until killed.
func serveBroker(addr string) error {
	b, err := proxy.StartEmbedded(addr, nil)
	if err != nil {
		return err
	}
	defer b.Close()
	select {}
}
