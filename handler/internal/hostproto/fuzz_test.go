package hostproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeTimer: DecodeTimer never panics; it accepts exactly the bodies that are one JSON object of at
// most MaxBodyBytes (the contract: any JSON object runs the function), judged by an oracle independent of
// it (encoding/json's Valid); every failure is ErrTooLarge or an *Error; and whatever it accepts survives
// EncodeTimer and a second DecodeTimer unchanged (times at the host's 100 ns precision, warnings aside).
// Seeds: the host fixtures' bodies plus testdata/fuzz/FuzzDecodeTimer (go test's corpus format).
// Run it with: go test -run '^$' -fuzz FuzzDecodeTimer ./handler/internal/hostproto/
func FuzzDecodeTimer(f *testing.F) {
	names, err := filepath.Glob(filepath.Join("testdata", "timer_*.http"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, name := range names {
		_, body := readFixture(f, filepath.Base(name))
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		inv, err := DecodeTimer(body, BindingTimer)
		trimmed := bytes.TrimSpace(body)
		isObject := len(body) <= MaxBodyBytes && json.Valid(body) && len(trimmed) > 0 && trimmed[0] == '{'
		if err != nil {
			if isObject {
				t.Fatalf("DecodeTimer refused a JSON object: %v", err)
			}
			var e *Error
			if !errors.Is(err, ErrTooLarge) && !errors.As(err, &e) {
				t.Fatalf("error %T %v is neither ErrTooLarge nor *Error", err, err)
			}
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if !isObject {
			t.Fatalf("DecodeTimer accepted %q, which is not one JSON object", body)
		}
		again, err := DecodeTimer(EncodeTimer(inv), BindingTimer)
		if err != nil {
			t.Fatalf("DecodeTimer(EncodeTimer(%+v)): %v", inv, err)
		}
		if a, b := normalize(inv), normalize(again); !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the invocation:\n got %+v\nwant %+v", b, a)
		}
	})
}

// normalize brings times to what the host can express (UTC, 100 ns), drops the warnings (EncodeTimer
// writes every member, so a second decode has none) and names the binding EncodeTimer writes when the
// payload had none.
func normalize(inv TimerInvocation) TimerInvocation {
	inv.Warnings = nil
	if inv.Binding == "" {
		inv.Binding = BindingTimer
	}
	n := func(t time.Time) time.Time {
		if t.IsZero() {
			return time.Time{}
		}
		return t.UTC().Truncate(100 * time.Nanosecond)
	}
	if s := inv.Timer.ScheduleStatus; s != nil {
		inv.Timer.ScheduleStatus = &ScheduleStatus{n(s.Last), n(s.Next), n(s.LastUpdated)}
	}
	if s := inv.Sys; s != nil {
		c := *s
		c.UtcNow = n(c.UtcNow)
		inv.Sys = &c
	}
	return inv
}

func TestFuzzCorpusPresent(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzDecodeTimer"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("seed corpus testdata/fuzz/FuzzDecodeTimer is missing or empty: %v", err)
	}
}
