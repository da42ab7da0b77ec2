package logctx

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestFromDefaultsToDiscard(t *testing.T) {
	for name, ctx := range map[string]context.Context{"background": context.Background(), "nil": nil} {
		t.Run(name, func(t *testing.T) {
			l := From(ctx)
			if l == nil {
				t.Fatal("From returned nil")
			}
			if l.Enabled(context.Background(), slog.LevelError) {
				t.Error("default logger is enabled, want a discarding one")
			}
		})
	}
}

func TestWithFrom(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, nil)).With("invocationId", "abc")
	ctx := With(context.Background(), l)
	From(ctx).Info("hello")
	if got := buf.String(); !strings.Contains(got, `"invocationId":"abc"`) || !strings.Contains(got, `"msg":"hello"`) {
		t.Errorf("log = %s, want the invocationId and message", got)
	}
	if got := With(ctx, nil); From(got) != l {
		t.Error("With(ctx, nil) dropped the logger")
	}
}
