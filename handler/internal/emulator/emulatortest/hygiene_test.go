package emulatortest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

func TestHygiene(t *testing.T) {
	var h Hygiene
	h.AddSecrets("short", "s3cr3t-value-0001", "identity-header-value")
	h.Record([]byte(`{"msg":"ok"}`))
	if _, _, hits := h.Scan(); len(hits) != 0 {
		t.Errorf("hits %v on clean output", hits)
	}
	fmt.Fprint(h.Writer(), `{"err":"header identity-header-value leaked"}`)
	secrets, outputs, hits := h.Scan()
	if secrets != 3 || outputs != 2 || len(hits) != 1 || !strings.Contains(hits[0], `starts "ide"`) || strings.Contains(hits[0], "identity-header-value") {
		t.Errorf("Scan = %d, %d, %q; want one hit that does not repeat the secret", secrets, outputs, hits)
	}
}

func TestHygieneWatch(t *testing.T) {
	var h Hygiene
	var header string
	t.Run("a test on a tenant", func(t *testing.T) {
		ten := NewTenant(t, emulator.Options{})
		header = ten.IdentityHeader()
		h.Watch(t, ten)
	})
	h.Record([]byte("X-IDENTITY-HEADER: " + header))
	if secrets, _, hits := h.Scan(); secrets == 0 || len(hits) != 1 {
		t.Errorf("Scan after Watch = %d secrets, hits %q; want the tenant's identity header among them, found", secrets, hits)
	}
}
