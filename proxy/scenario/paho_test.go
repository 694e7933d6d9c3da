package scenario

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// TestMain lets the test binary play a paho.golang device for run: scenarios (pahoDevice).
func TestMain(m *testing.M) {
	if os.Getenv("MQSCOPE_PAHO_DEVICE") == "1" {
		if err := pahoDevice(); err != nil {
			fmt.Fprintln(os.Stderr, "paho device:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// pahoDevice is a device on paho.golang: it connects to $MQSCOPE_ADDR and publishes what a
// limits scenario's vars say ($MQSCOPE_TOPIC, _COUNT messages of _PAYLOAD_SIZE bytes at _QOS, retained
// when _RETAIN), all at once (each from its own goroutine, so that paho's flow control is what
// keeps them within a Receive Maximum), then disconnects.
func pahoDevice() error {
	env := func(k string, def int) int {
		if n, err := strconv.Atoi(os.Getenv("MQSCOPE_" + k)); err == nil {
			return n
		}
		return def
	}
	conn, err := net.Dial("tcp", os.Getenv("MQSCOPE_ADDR"))
	if err != nil {
		return err
	}
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "paho-dev", KeepAlive: 30, CleanStart: true}); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	payload := []byte(strings.Repeat("x", env("PAYLOAD_SIZE", 10)))
	var wg sync.WaitGroup
	for range env("COUNT", 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Publish(ctx, &paho.Publish{Topic: os.Getenv("MQSCOPE_TOPIC"), QoS: byte(env("QOS", 0)), Retain: env("RETAIN", 0) == 1, Payload: payload})
			if err != nil {
				fmt.Println("publish:", err) // the device's output, in the report
			}
		}()
	}
	wg.Wait()
	return c.Disconnect(&paho.Disconnect{ReasonCode: 0})
}

// The limits pack against paho.golang v0.23.0 as an external device: it keeps to Receive
// Maximum 1 (its flow control), uses no alias on its own, and sends no QoS 1 PUBLISH under
// Maximum QoS 0 and no retained one under Retain Available 0; but it does not check the granted
// Maximum Packet Size, so that scenario fails with the finding of the packet it sent over it.
func TestDevicePackPaho(t *testing.T) {
	t.Parallel()
	device := "MQSCOPE_PAHO_DEVICE=1 exec '" + os.Args[0] + "'"
	checkPack(t, runPack(t, "../../testdata/scenarios/device/limits.yaml", device), map[string]want{
		"smaller Maximum Packet Size": {Failed, "MQTT-3.2.2-15: PUBLISH of 327 bytes is over the 100-byte Maximum Packet Size"},
		"Topic Alias Maximum 0":       {Passed, "0 before the run ended"},
		"Receive Maximum 1":           {Passed, "every message still arrives: 3 before the run ended"},
		"Maximum QoS 0":               {Passed, "the device publishes at QoS 0 only: none"},
		"Retain Available 0":          {Passed, "the device sends no retained message: 0"},
	})
}
