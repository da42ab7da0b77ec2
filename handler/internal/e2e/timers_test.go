package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

// logLines are the JSON lines of the handler's output.
func (a *app) logLines() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(a.logs.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// waitLog waits for a log line that ok accepts: the handler's stdout reaches the buffer through a pipe,
// a moment after its answer.
func (a *app) waitLog(ok func(map[string]any) bool) map[string]any {
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, l := range a.logLines() {
			if ok(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// provisioned starts a function app and provisions it.
func provisioned(t *testing.T, s setup) (*app, provisionResponse) {
	t.Helper()
	a := start(t, s)
	var p provisionResponse
	if got := a.call(http.MethodPost, "/api/provision", "", &p); got != http.StatusCreated {
		t.Fatalf("provision: %d", got)
	}
	return a, p
}

func TestComplianceTimer(t *testing.T) {
	t.Parallel()
	t.Run("compliant run", func(t *testing.T) {
		t.Parallel()
		a, _ := provisioned(t, setup{})
		a.tenant.ResetStats()
		status, r := a.invoke("compliance")
		if status != http.StatusOK {
			t.Fatalf("compliance on a compliant tenant: %d %+v, want 200", status, r)
		}
		if a.writes() != 0 {
			t.Errorf("a compliant run made %d writes, want 0", a.writes())
		}
	})
	for _, d := range drifts {
		for _, remediate := range []bool{false, true} {
			name := d.name + " reported"
			if remediate {
				name = d.name + " remediated"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				settings := map[string]string{}
				if remediate {
					settings["APPREG_REMEDIATE"] = "true"
				}
				a, p := provisioned(t, setup{settings: settings})
				a.tenant.Mutate(func(s *emulator.State) { d.drift(s, p.AppID) })
				warningOnly := d.want == "SECRET_EXPIRING" || d.want == "CREDENTIAL_STALE"
				a.tenant.ResetStats()
				status, _ := a.invoke("compliance")
				logged := a.waitLog(func(l map[string]any) bool { return l["msg"] == "finding" && l["code"] == d.want })
				if logged == nil {
					t.Fatalf("no log line for finding %s", d.want)
				}
				for _, k := range []string{"severity", "message", "invocationId"} {
					if logged[k] == nil || logged[k] == "" {
						t.Errorf("finding log line %v lacks %s", logged, k)
					}
				}
				if d.want != "APP_MISSING" && logged["appId"] != p.AppID {
					t.Errorf("finding log line appId = %v, want %s", logged["appId"], p.AppID)
				}
				switch {
				case warningOnly:
					if status != http.StatusOK {
						t.Errorf("compliance with only the warning %s: %d, want 200", d.want, status)
					}
				case remediate:
					if status != http.StatusOK {
						t.Errorf("compliance with remediation of %s: %d, want 200", d.want, status)
					}
					var st statusResponse
					if a.call(http.MethodGet, "/api/status", "", &st); !st.Compliant {
						t.Errorf("status after remediation = %+v, want compliant", st)
					}
					checkConverged(t, a.tenant)
				default:
					if status != http.StatusInternalServerError {
						t.Errorf("compliance with %s and no remediation: %d, want 500", d.want, status)
					}
					if a.writes() != 0 {
						t.Errorf("compliance without remediation made %d writes, want 0", a.writes())
					}
					if a.waitLog(func(l map[string]any) bool { return l["level"] == "ERROR" && l["msg"] != "finding" }) == nil {
						t.Error("the failed run is not logged as an error line on stdout")
					}
				}
			})
		}
	}
}

func TestRotateTimer(t *testing.T) {
	t.Parallel()
	const site = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/scepman/providers/Microsoft.Web/sites/scepman"
	for _, refresh := range []int{0, http.StatusOK, http.StatusInternalServerError} {
		name := "renewal"
		settings := map[string]string{}
		if refresh != 0 {
			name = "renewal with a refresh answering " + http.StatusText(refresh)
			settings["APPREG_REFRESH_SITE_IDS"] = site
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a, p := provisioned(t, setup{settings: settings, before: func(tn *emulator.Tenant) {
				if refresh != 0 {
					tn.SetSite(site, refresh)
				}
			}})
			status, r := a.invoke("rotate")
			var res struct {
				Renewed bool `json:"renewed"`
			}
			if err := json.Unmarshal(r.ReturnValue, &res); err != nil || status != http.StatusOK || res.Renewed {
				t.Fatalf("rotate with a fresh secret: %d %s renewed=%v, want 200 and no renewal", status, r.ReturnValue, res.Renewed)
			}
			a.tenant.Mutate(func(s *emulator.State) { setExpiry(s, p.AppID, time.Now().Add(20*24*time.Hour)) })
			status, r = a.invoke("rotate")
			var renewed rotateResult
			if err := json.Unmarshal(r.ReturnValue, &renewed); err != nil || status != http.StatusOK || !renewed.Renewed || renewed.Secret == nil {
				t.Fatalf("rotate inside the renewal window: %d %s, want 200 and a renewal", status, r.ReturnValue)
			}
			s := a.tenant.Snapshot()
			if got := len(s.Secret(secretName).Versions); got != 2 {
				t.Errorf("Key Vault versions = %d, want 2", got)
			}
			if s.Application("scepman").PasswordCredential(p.Secret.KeyID) == nil {
				t.Error("the replaced credential was removed at once; it must stay valid for the overlap")
			}
			checkConverged(t, a.tenant)
			var st statusResponse
			if a.call(http.MethodGet, "/api/status", "", &st); !st.Compliant || st.Secret == nil || st.Secret.KeyID != renewed.Secret.KeyID {
				t.Errorf("status after the renewal = %+v, want compliant with keyId %s", st, renewed.Secret.KeyID)
			}
			if refresh == 0 {
				return
			}
			if len(renewed.Refresh) != 1 || renewed.Refresh[0].Status != refresh || (renewed.Refresh[0].Error != "") != (refresh >= 400) {
				t.Errorf("refresh reported %+v, want the site's %d", renewed.Refresh, refresh)
			}
			if a.tenant.Stats().SiteRefreshes[site] == 0 {
				t.Error("the site's Key Vault references were not refreshed")
			}
			if refresh >= 400 && a.waitLog(func(l map[string]any) bool {
				return l["msg"] == "key vault reference refresh" && l["siteId"] == site && l["level"] == "WARN"
			}) == nil {
				t.Error("the failed refresh is not logged")
			}
		})
	}
}
