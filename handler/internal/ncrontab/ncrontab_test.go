package ncrontab

import (
	"strings"
	"testing"
	"time"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestNext(t *testing.T) {
	tests := []struct {
		expr  string
		after string
		want  []string // the next occurrences, in order; "" for none
	}{
		{"0 0 */6 * * *", "2024-10-04T05:59:59Z", []string{"2024-10-04T06:00:00Z", "2024-10-04T12:00:00Z", "2024-10-04T18:00:00Z", "2024-10-05T00:00:00Z"}},
		{"0 0 */6 * * *", "2024-10-04T06:00:00Z", []string{"2024-10-04T12:00:00Z"}},
		{"0 30 3 * * *", "2024-10-04T03:30:00.5Z", []string{"2024-10-05T03:30:00Z", "2024-10-06T03:30:00Z"}},
		{"0 30 3 * * *", "2024-12-31T04:00:00Z", []string{"2025-01-01T03:30:00Z"}},
		{"* * * * * *", "2024-10-04T10:20:00.9Z", []string{"2024-10-04T10:20:01Z", "2024-10-04T10:20:02Z"}},
		{"*/15 * * * * *", "2024-10-04T10:20:44Z", []string{"2024-10-04T10:20:45Z", "2024-10-04T10:21:00Z"}},
		{"0 5-7,30 9 * * *", "2024-10-04T09:06:00Z", []string{"2024-10-04T09:07:00Z", "2024-10-04T09:30:00Z", "2024-10-05T09:05:00Z"}},
		{"0 0 9-17/4 * * *", "2024-10-04T00:00:00Z", []string{"2024-10-04T09:00:00Z", "2024-10-04T13:00:00Z", "2024-10-04T17:00:00Z", "2024-10-05T09:00:00Z"}},
		{"10/20 * * * * *", "2024-10-04T10:20:00Z", []string{"2024-10-04T10:20:10Z", "2024-10-04T10:20:30Z", "2024-10-04T10:20:50Z", "2024-10-04T10:21:10Z"}},
		{"0 0 10 * * 1-5", "2024-10-04T11:00:00Z", []string{"2024-10-07T10:00:00Z"}}, // Friday after 10 -> Monday
		{"0 0 10 * * MON-FRI", "2024-10-04T11:00:00Z", []string{"2024-10-07T10:00:00Z"}},
		{"0 0 0 * * 7", "2024-10-04T00:00:00Z", []string{"2024-10-06T00:00:00Z"}}, // 7 is Sunday
		{"0 0 0 * * sun", "2024-10-04T00:00:00Z", []string{"2024-10-06T00:00:00Z"}},
		{"0 0 0 1 JAN,jul *", "2024-02-01T00:00:00Z", []string{"2024-07-01T00:00:00Z", "2025-01-01T00:00:00Z"}},
		{"0 0 0 31 * *", "2024-04-01T00:00:00Z", []string{"2024-05-31T00:00:00Z", "2024-07-31T00:00:00Z"}},
		{"0 0 0 29 2 *", "2024-03-01T00:00:00Z", []string{"2028-02-29T00:00:00Z"}},
		{"0 0 0 13 * 5", "2024-10-04T00:00:00Z", []string{"2024-12-13T00:00:00Z", "2025-06-13T00:00:00Z"}}, // Friday the 13th: day AND weekday
		{"0 0 0 31 2 *", "2024-01-01T00:00:00Z", []string{""}},
		{"0 0 12 * * *", "2024-10-04T14:00:00+02:00", []string{"2024-10-05T12:00:00Z"}}, // evaluated in UTC
	}
	for _, tt := range tests {
		t.Run(tt.expr+" after "+tt.after, func(t *testing.T) {
			s, err := Parse(tt.expr)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			cur := at(t, tt.after)
			for i, w := range tt.want {
				got := s.Next(cur)
				if w == "" {
					if !got.IsZero() {
						t.Errorf("Next(%v) = %v, want none", cur, got)
					}
					return
				}
				if want := at(t, w); !got.Equal(want) || got.Location() != time.UTC {
					t.Fatalf("occurrence %d: Next(%v) = %v, want %v (UTC)", i+1, cur, got, want)
				}
				cur = got
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		expr string
		says string
	}{
		{"", "has 0 fields"},
		{"0 30 3 * *", "has 5 fields: expected 6"},
		{"0 0 30 3 * * *", "has 7 fields"},
		{"60 * * * * *", "field 1 (second) \"60\": 60 is out of range 0-59"},
		{"* 60 * * * *", "field 2 (minute)"},
		{"* * 24 * * *", "field 3 (hour) \"24\": 24 is out of range 0-23"},
		{"* * * 0 * *", "field 4 (day) \"0\": 0 is out of range 1-31"},
		{"* * * * 13 *", "field 5 (month)"},
		{"* * * * FOO *", `"FOO" is not a number or a month name`},
		{"* * * * * 8", "field 6 (day-of-week) \"8\": 8 is out of range 0-7"},
		{"*/0 * * * * *", `step "0": expected a whole number of at least 1`},
		{"*/x * * * * *", `step "x"`},
		{"5-1 * * * * *", "range 5-1: the start is after the end"},
		{"1,,2 * * * * *", "empty list item"},
		{"a * * * * *", `"a" is not a number`},
		{"%APPREG_ROTATION_SCHEDULE% * * * * *", "is not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := Parse(tt.expr)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
		})
	}
}

func TestString(t *testing.T) {
	s, err := Parse("  0 30  3 * * * ")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "0 30 3 * * *"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
