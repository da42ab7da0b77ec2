// Package ncrontab parses the six-field NCRONTAB expressions of Azure Functions timer triggers
// ({second} {minute} {hour} {day} {month} {day-of-week}, evaluated in UTC) and computes their occurrences.
//
// Each field is a comma-separated list of items: `*`, a number, a range `a-b`, and a step on any of them
// (`*/n`, `a-b/n`, `a/n` meaning a to the field's maximum). Months and days of the week may also be
// written as names (JAN-DEC, SUN-SAT, case-insensitive); day of week 7 is Sunday, like 0. As in the
// NCrontab library the host uses, an occurrence must match both the day of month and the day of week.
package ncrontab

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

type field struct {
	name     string
	min, max int
	names    map[string]int
}

var fields = [6]field{
	{name: "second", min: 0, max: 59},
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: map[string]int{
		"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}},
	{name: "day-of-week", min: 0, max: 7, names: map[string]int{
		"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}},
}

// Schedule is a parsed expression. Its zero value matches nothing.
type Schedule struct {
	expr string
	set  [6]uint64 // bit v set: value v matches
}

// Parse reads a six-field NCRONTAB expression. Errors name the field and what was wrong.
func Parse(expr string) (*Schedule, error) {
	parts := strings.Fields(expr)
	if len(parts) != 6 {
		return nil, fmt.Errorf("NCRONTAB %q has %d fields: expected 6, {second} {minute} {hour} {day} {month} {day-of-week}, such as \"0 30 3 * * *\"", expr, len(parts))
	}
	s := &Schedule{expr: strings.Join(parts, " ")}
	for i, p := range parts {
		set, err := parseField(p, fields[i])
		if err != nil {
			return nil, fmt.Errorf("NCRONTAB %q: field %d (%s) %q: %w", expr, i+1, fields[i].name, p, err)
		}
		s.set[i] = set
	}
	if s.set[5]&(1<<7) != 0 { // 7 is Sunday too
		s.set[5] |= 1
	}
	return s, nil
}

func parseField(s string, f field) (uint64, error) {
	var set uint64
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			return 0, fmt.Errorf("empty list item")
		}
		rng, stepStr, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n < 1 {
				return 0, fmt.Errorf("step %q: expected a whole number of at least 1", stepStr)
			}
			step = n
		}
		var lo, hi int
		switch {
		case rng == "*":
			lo, hi = f.min, f.max
			if f.name == "day-of-week" {
				hi = 6
			}
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = value(a, f); err != nil {
				return 0, err
			}
			if hi, err = value(b, f); err != nil {
				return 0, err
			}
			if lo > hi {
				return 0, fmt.Errorf("range %s: the start is after the end", rng)
			}
		default:
			v, err := value(rng, f)
			if err != nil {
				return 0, err
			}
			lo, hi = v, v
			if hasStep { // a/n: from a to the maximum
				hi = f.max
			}
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << uint(v)
		}
	}
	return set, nil
}

func value(s string, f field) (int, error) {
	if v, ok := f.names[strings.ToUpper(s)]; ok {
		return v, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		if f.names != nil {
			return 0, fmt.Errorf("%q is not a number or a %s name", s, f.name)
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if n < f.min || n > f.max {
		return 0, fmt.Errorf("%d is out of range %d-%d", n, f.min, f.max)
	}
	return n, nil
}

// String is the expression, fields separated by single spaces.
func (s *Schedule) String() string { return s.expr }

func (s *Schedule) has(i, v int) bool { return s.set[i]&(1<<uint(v)) != 0 }

// horizon bounds the search: an expression such as "0 0 0 29 2 1" (29 February on a Monday) recurs only
// every 28 years.
const horizon = 30

// Next is the first occurrence strictly after t, in UTC; the zero time when there is none within 30 years
// (such as "0 0 0 31 2 *").
func (s *Schedule) Next(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Second).Add(time.Second)
	limit := t.AddDate(horizon, 0, 0)
	for !t.After(limit) {
		switch {
		case !s.has(4, int(t.Month())):
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		case !s.has(3, t.Day()) || !s.has(5, int(t.Weekday())):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
		case !s.has(2, t.Hour()):
			t = t.Truncate(time.Hour).Add(time.Hour)
		case !s.has(1, t.Minute()):
			t = t.Truncate(time.Minute).Add(time.Minute)
		case !s.has(0, t.Second()):
			t = t.Add(time.Second)
		default:
			return t
		}
	}
	return time.Time{}
}
