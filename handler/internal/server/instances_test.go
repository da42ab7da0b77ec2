package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
)

// multiFixture serves three instances: "a" and "b" succeed, "c" fails (throttled for good).
func multiFixture(t *testing.T, multi bool) (*fixture, map[string]*stub) {
	t.Helper()
	stubs := map[string]*stub{"a": newStub(), "b": newStub(), "c": newStub()}
	stubs["c"].err = &appreg.ServiceError{Service: appreg.ServiceGraph, Kind: appreg.ErrThrottled, Status: 429, Message: "slow down"}
	stubs["b"].provision.Created = true
	f := &fixture{svc: stubs["a"], logs: &logBuffer{}}
	logger := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var ins []Instance
	for _, n := range []string{"a", "b", "c"} {
		ins = append(ins, Instance{Name: n, Service: stubs[n]})
	}
	f.e = New(Options{Instances: ins, Multi: multi, Logger: logger, HTTPTimeout: time.Minute, TimerTimeout: time.Minute})
	return f, stubs
}

func TestOneInstanceByName(t *testing.T) {
	f, stubs := multiFixture(t, true)
	rec := f.do(t, http.MethodPost, "/api/provision?instance=b", "")
	var p appreg.ProvisionResult
	if err := json.Unmarshal(rec.Body.Bytes(), &p); rec.Code != http.StatusCreated || err != nil || p.AppID != "app" {
		t.Fatalf("provision of b: %d %s, want 201 and b's answer as with one instance", rec.Code, rec.Body)
	}
	if stubs["a"].calls.Load() != 0 || stubs["c"].calls.Load() != 0 || stubs["b"].calls.Load() != 1 {
		t.Errorf("calls a=%d b=%d c=%d, want only b", stubs["a"].calls.Load(), stubs["b"].calls.Load(), stubs["c"].calls.Load())
	}
	lines := f.logs.withMsg(t, "engine at work")
	if len(lines) == 0 {
		t.Error(`no "engine at work" log line: the check of the instance attribute saw nothing`)
	}
	for _, l := range lines {
		if l["instance"] != "b" {
			t.Errorf("the engine's log line %v does not carry instance b", l)
		}
	}
	rec = f.do(t, http.MethodGet, "/api/status?instance=nope", "")
	if e := decodeError(t, rec); rec.Code != http.StatusNotFound || !strings.Contains(e.Message, "a, b, c") {
		t.Errorf("an unknown instance: %d %+v, want 404 naming the instances", rec.Code, e)
	}
	rec = f.do(t, http.MethodGet, "/api/status?instance=c", "")
	if e := decodeError(t, rec); rec.Code != http.StatusServiceUnavailable || e.Code != CodeUpstreamUnavailable {
		t.Errorf("status of c: %d %+v, want 503 as with one instance", rec.Code, e)
	}
}

func TestEveryInstance(t *testing.T) {
	f, _ := multiFixture(t, true)
	rec := f.do(t, http.MethodGet, "/api/status", "")
	var body struct {
		Instances map[string]json.RawMessage `json:"instances"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Instances) != 3 {
		t.Fatalf("status of every instance: %d %s, want {\"instances\": {a, b, c}}", rec.Code, rec.Body)
	}
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want the failed instance's 503", rec.Code)
	}
	var a appreg.StatusReport
	var c ErrorBody
	if json.Unmarshal(body.Instances["a"], &a) != nil || !a.Compliant || json.Unmarshal(body.Instances["c"], &c) != nil || c.Error.Code != CodeUpstreamUnavailable {
		t.Errorf("answers %s, want a's report and c's error envelope", rec.Body)
	}
	failed := f.logs.withMsg(t, "request failed")
	if len(failed) != 1 || failed[0]["instance"] != "c" {
		t.Errorf("failure lines %v, want one, carrying instance c", failed)
	}
}

func TestTimersOverEveryInstance(t *testing.T) {
	timer := timerBody(t, "timer_normal.http")
	for _, path := range []string{"/compliance", "/rotate"} {
		t.Run(path, func(t *testing.T) {
			f, stubs := multiFixture(t, true)
			rec := f.do(t, http.MethodPost, path, timer, jsonCT)
			e := decodeError(t, rec)
			if rec.Code != http.StatusInternalServerError || e.Code != CodeInstancesFailed || !strings.Contains(e.Message, "c: UpstreamUnavailable") ||
				strings.Contains(e.Message, "a:") {
				t.Errorf("%s with c failing: %d %+v, want 500 naming c only", path, rec.Code, e)
			}
			for n, s := range stubs {
				if s.calls.Load() != 1 {
					t.Errorf("instance %s ran %d times, want 1: one failure never stops another", n, s.calls.Load())
				}
			}
			stubs["c"].err = nil
			rec = f.do(t, http.MethodPost, path, timer, jsonCT)
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"instances"`) {
				t.Errorf("%s with every instance well: %d %s, want 200 with every instance's result", path, rec.Code, rec.Body)
			}
		})
	}
}

func TestOneInstanceWithoutAPPREGINSTANCES(t *testing.T) {
	f, _ := multiFixture(t, false)
	rec := f.do(t, http.MethodGet, "/api/status", "")
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), `"instances"`) {
		t.Errorf("status without APPREG_INSTANCES: %d %s, want the first instance's report as ever", rec.Code, rec.Body)
	}
}
