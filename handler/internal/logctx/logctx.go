// Package logctx carries the request-scoped *slog.Logger (with the invocationId attribute) in a
// context.Context, from the HTTP server to the engine and the adapters.
package logctx

import (
	"context"
	"log/slog"
)

type key struct{}

// With returns a copy of ctx that carries l. A nil l leaves ctx as it is.
func With(ctx context.Context, l *slog.Logger) context.Context {
	if l == nil {
		return ctx
	}
	return context.WithValue(ctx, key{}, l)
}

// From returns the logger ctx carries, or else slog.Default() at the time of the call (the handler's
// run sets it to its JSON logger on stdout), so that no line is dropped silently: never nil.
func From(ctx context.Context) *slog.Logger {
	if ctx != nil {
		if l, ok := ctx.Value(key{}).(*slog.Logger); ok {
			return l
		}
	}
	return slog.Default()
}
