package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepman-appreg/appreg/handler/internal/config"
)

// The clients are built before run starts listening: a setting that only their build rejects (here
// SSL_CERT_FILE naming no file) must still be reported as an invalid configuration, in the log and by
// every invocation, while the readiness probe is answered.
func TestRunReportsSettingsTheClientsReject(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.pem")
	env := map[string]string{config.EnvKeyVaultURL: "https://contoso-kv.vault.azure.net/", "SSL_CERT_FILE": missing}
	url, out := startRun(t, func(k string) string { return env[k] })
	if status, _ := get(t, http.MethodGet, url+"/"); status != http.StatusOK {
		t.Errorf("GET / = %d, want 200", status)
	}
	for _, r := range []struct{ method, path string }{{http.MethodPost, "/api/provision"}, {http.MethodGet, "/api/status"}} {
		status, body := get(t, r.method, url+r.path)
		if status != http.StatusInternalServerError || !strings.Contains(body, "InvalidConfiguration") || !strings.Contains(body, "SSL_CERT_FILE") {
			t.Errorf("%s %s = %d %s, want 500 InvalidConfiguration naming SSL_CERT_FILE", r.method, r.path, status, body)
		}
	}
	if log := out.String(); !strings.Contains(log, "invalid configuration") || !strings.Contains(log, "SSL_CERT_FILE") {
		t.Errorf("the log does not report the invalid SSL_CERT_FILE:\n%s", log)
	}
}
