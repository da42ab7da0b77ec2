package logctx

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestFromFallsBackToDefault checks that a context without a logger gives slog.Default(), so that its
// lines still reach the log.
func TestFromFallsBackToDefault(t *testing.T) {
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	for name, ctx := range map[string]context.Context{"background": context.Background(), "nil": nil} {
		t.Run(name, func(t *testing.T) {
			buf.Reset()
			l := From(ctx)
			if l == nil {
				t.Fatal("From returned nil")
			}
			if l != slog.Default() {
				t.Error("From of a context without a logger is not slog.Default()")
			}
			l.Info("no logger in the context", "case", name)
			if got := buf.String(); !strings.Contains(got, `"msg":"no logger in the context"`) || !strings.Contains(got, `"case":"`+name+`"`) {
				t.Errorf("default log = %q, want the line", got)
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
