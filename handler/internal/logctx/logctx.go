// Package logctx carries the request-scoped slog logger (with the invocation id) through a context, so
// that the engine logs with the same stable keys as the handler that called it.
package logctx

import (
	"context"
	"io"
	"log/slog"
)

type key struct{}

var discard = slog.New(slog.NewJSONHandler(io.Discard, nil))

// With returns a context that carries l.
func With(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, key{}, l)
}

// From returns the logger ctx carries, or one that discards everything; never nil.
func From(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(key{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return discard
}
