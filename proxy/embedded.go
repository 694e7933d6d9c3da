package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Embedded is an in-process MQTT 5 broker (mochi-mqtt) listening on loopback, for
// `--upstream embedded`: the proxy then works with nothing else installed. It allows every
// client.
type Embedded struct {
	srv *mqtt.Server
	tcp *listeners.TCP
}

// StartEmbedded starts the broker on addr ("127.0.0.1:0" picks a free port). Broker warnings go
// to logf.
func StartEmbedded(addr string, logf func(string, ...any)) (*Embedded, error) {
	opts := &mqtt.Options{InlineClient: false}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	opts.Logger = slog.New(&logHandler{logf: logf})
	srv := mqtt.New(opts)
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, err
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "embedded", Address: addr})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return &Embedded{srv: srv, tcp: tcp}, nil
}

// Addr is the broker's TCP address.
func (e *Embedded) Addr() string { return e.tcp.Address() }

// Close stops the broker.
func (e *Embedded) Close() error { return e.srv.Close() }

// logHandler passes the broker's warnings and errors to logf.
type logHandler struct {
	logf  func(string, ...any)
	attrs []slog.Attr
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.logf("embedded broker: %s", b.String())
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{logf: h.logf, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }
