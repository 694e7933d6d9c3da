package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/decode"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// runCmd runs mqscope in memory and returns its exit status, standard output and error.
func runCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// sampleSession builds a small MQTT 5 session, both directions in order, with the codec.
func sampleSession(t *testing.T) []byte {
	t.Helper()
	pkts := []decode.Packet{
		&decode.Connect{CleanStart: true, KeepAlive: 60, ClientID: "sensor-7", HasUsername: true, Username: "dev",
			HasPassword: true, Password: []byte("hunter2"),
			Properties: decode.Properties{decode.IntProp(decode.PropSessionExpiry, 300), decode.IntProp(decode.PropReceiveMaximum, 10),
				decode.IntProp(decode.PropTopicAliasMaximum, 5), decode.IntProp(decode.PropMaximumPacketSize, 4096)},
			Will: &decode.WillMessage{QoS: 1, Topic: "sensors/7/status", Payload: []byte("offline"),
				Properties: decode.Properties{decode.IntProp(decode.PropWillDelay, 5)}}},
		&decode.Connack{Properties: decode.Properties{decode.IntProp(decode.PropTopicAliasMaximum, 10),
			decode.IntProp(decode.PropMaximumQoS, 1), decode.IntProp(decode.PropServerKeepAlive, 30)}},
		&decode.Subscribe{PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "cmd/7/#", QoS: 1}}},
		&decode.Suback{PacketID: 1, ReasonCodes: []decode.ReasonCode{1}},
		&decode.Publish{QoS: 1, PacketID: 2, Topic: "sensors/7/temp", Payload: []byte(`{"t":21.5}`),
			Properties: decode.Properties{decode.IntProp(decode.PropTopicAlias, 1), decode.IntProp(decode.PropPayloadFormat, 1),
				decode.StrProp(decode.PropContentType, "application/json"), decode.UserProp("unit", "C")}},
		&decode.Ack{PacketType: decode.PUBACK, PacketID: 2},
		&decode.Publish{Topic: "", Payload: []byte(`{"t":21.6}`), Properties: decode.Properties{decode.IntProp(decode.PropTopicAlias, 1)}},
		&decode.Pingreq{},
		&decode.Pingresp{},
		&decode.Disconnect{ReasonCode: decode.DisconnectWithWill},
	}
	var b []byte
	for _, p := range pkts {
		var err error
		if b, err = decode.Encode(b, p); err != nil {
			t.Fatalf("encoding %s: %v", p.Type(), err)
		}
	}
	return b
}

func TestSampleIsCurrent(t *testing.T) {
	path := filepath.Join("..", "..", "testdata", "sample.bin")
	want := sampleSession(t)
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/mqscope -run TestSampleIsCurrent -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("testdata/sample.bin is stale: run go test ./cmd/mqscope -run TestSampleIsCurrent -update")
	}
}

func TestDecodeSample(t *testing.T) {
	code, out, errOut := runCmd(t, "", "decode", "--raw", filepath.Join("..", "..", "testdata", "sample.bin"))
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"#1 CONNECT (MQTT 5.0)", "#2 CONNACK", "#5 PUBLISH", "topic_alias                1",
		`client_id                    "sensor-7"`, "password                     <redacted> (7 bytes)", "0x04 Disconnect with Will Message",
		"will_delay_interval        5"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") {
		t.Error("password shown without --show-secrets")
	}
	_, out, _ = runCmd(t, "", "decode", "--show-secrets", "--raw", filepath.Join("..", "..", "testdata", "sample.bin"))
	if !strings.Contains(out, `"hunter2"`) {
		t.Error("--show-secrets does not show the password")
	}
}

func TestDecodeJSONLines(t *testing.T) {
	sample := sampleSession(t)
	var hexIn strings.Builder
	for _, c := range sample {
		hexIn.WriteString("0x")
		hexIn.WriteString(strings.ToUpper(string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15])))
		hexIn.WriteString(", ")
	}
	code, out, errOut := runCmd(t, hexIn.String(), "decode", "--format", "jsonl")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 10 {
		t.Fatalf("got %d lines, want 10", len(lines))
	}
	var pub map[string]any
	if err := json.Unmarshal([]byte(lines[4]), &pub); err != nil {
		t.Fatal(err)
	}
	props, _ := pub["properties"].(map[string]any)
	if pub["type"] != "PUBLISH" || pub["topic"] != "sensors/7/temp" || pub["packet_id"] != 2.0 || props["content_type"] != "application/json" {
		t.Errorf("PUBLISH record = %v", pub)
	}
	if pl, _ := pub["payload"].(map[string]any); pl["t"] != 21.5 || pub["payload_format"] != "json" {
		t.Errorf("PUBLISH payload = %v (%v), want the JSON object", pub["payload"], pub["payload_format"])
	}
	if up, _ := props["user_property"].([]any); len(up) != 1 {
		t.Errorf("user_property = %v, want one pair", props["user_property"])
	}
	var conn map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &conn)
	if conn["connect_client_id"] != "sensor-7" {
		t.Errorf("connect_client_id = %v", conn["connect_client_id"])
	}
	if conn["password"] != "<redacted>" {
		t.Errorf("password in JSON = %v, want redacted", conn["password"])
	}
}

func TestDecodeBadInput(t *testing.T) {
	tests := []struct {
		name, stdin string
		args        []string
		code        int
		errWant     string
	}{
		{"not hex", "30 0g", []string{"decode"}, 1, "'g' at character 5"},
		{"odd digits", "30 0", []string{"decode"}, 1, "odd number of hex digits"},
		{"truncated", "", []string{"decode", "30 0a 00 03 61 2f 62"}, 1, "input ends inside packet #1 at offset 0: PUBLISH announces 12 bytes, only 7 present"},
		{"vbi too long", "", []string{"decode", "30 ff ff ff ff 01"}, 1, "packet #1 at offset 0"},
		{"malformed", "", []string{"decode", "--version", "5", "62 02 00 01"}, 0, ""},
		{"bad flags", "", []string{"decode", "60 02 00 01"}, 1, "MQTT-3.6.1-1"},
		{"empty", "", []string{"decode"}, 1, "no input"},
		{"bad version", "", []string{"decode", "--version", "6", "c0 00"}, 2, "--version 6"},
		{"bad format", "", []string{"decode", "--format", "xml", "c0 00"}, 2, "--format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, tt.stdin, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, errOut)
			}
			if !strings.Contains(errOut, tt.errWant) {
				t.Errorf("stderr %q lacks %q", errOut, tt.errWant)
			}
		})
	}
}

func TestParseHex(t *testing.T) {
	tests := []struct {
		in   string
		want []byte
	}{
		{"10 02 00 00", []byte{0x10, 2, 0, 0}},
		{"0x10,0x02, 0X00", []byte{0x10, 2, 0}},
		{"\\x10\\x02", []byte{0x10, 2}},
		{"1002\n00:00", []byte{0x10, 2, 0, 0}},
		{"ab-CD;ef", []byte{0xab, 0xcd, 0xef}},
		{"00 0x01", []byte{0, 1}},
	}
	for _, tt := range tests {
		got, err := parseHex(tt.in)
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("parseHex(%q) = % x, %v; want % x", tt.in, got, err, tt.want)
		}
	}
}

// TestDecodeSecrets: a password and authentication data are redacted in every form decode
// prints, --bytes included, unless --show-secrets.
func TestDecodeSecrets(t *testing.T) {
	var b []byte
	for _, p := range []decode.Packet{
		&decode.Connect{CleanStart: true, ClientID: "c", HasUsername: true, Username: "dev", HasPassword: true, Password: []byte("hunter2"),
			Properties: decode.Properties{decode.StrProp(decode.PropAuthMethod, "SCRAM-SHA-1"), decode.BinProp(decode.PropAuthData, []byte("n,,n=user,r=fyko"))}},
		&decode.Auth{ReasonCode: 0x18, Properties: decode.Properties{decode.StrProp(decode.PropAuthMethod, "SCRAM-SHA-1"), decode.BinProp(decode.PropAuthData, []byte("c=biws,r=fyko"))}},
	} {
		var err error
		if b, err = decode.Encode(b, p); err != nil {
			t.Fatal(err)
		}
	}
	hexIn := fmt.Sprintf("% x", b)
	secrets := []string{"hunter2", "68 75 6e 74 65 72 32", "n=user", "72 2c 6e 3d", "c=biws", "63 3d 62 69 77 73", "0x6e2c2c", "0x633d"}
	for _, args := range [][]string{{"decode", hexIn}, {"decode", "--bytes", hexIn}, {"decode", "--format", "jsonl", hexIn}} {
		code, out, errOut := runCmd(t, "", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args[:len(args)-1], code, errOut)
		}
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%v shows the secret %q:\n%s", args[:len(args)-1], s, out)
			}
		}
		if !strings.Contains(out, "<redacted>") {
			t.Errorf("%v: no <redacted> in\n%s", args[:len(args)-1], out)
		}
	}
	_, out, _ := runCmd(t, "", "decode", "--bytes", "--show-secrets", hexIn)
	for _, s := range []string{`"hunter2"`, "00 07 68 75 6e 74 65 72 32", `"n,,n=user,r=fyko"`, "63 3d 62 69 77 73"} {
		if !strings.Contains(out, s) {
			t.Errorf("--show-secrets --bytes lacks %q:\n%s", s, out)
		}
	}
	_, out, _ = runCmd(t, "", "decode", "--bytes", hexIn)
	if !strings.Contains(out, "password                           00 07 <redacted> (7 bytes)") {
		t.Errorf("--bytes does not show the password's length and <redacted>:\n%s", out)
	}
}
