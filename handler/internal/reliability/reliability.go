// Package reliability is the test support of the reliability proof (issue 6, RELIABILITY.md): the
// invariants checked on an emulated tenant after every run, the tables the proof prints, the scan of
// responses and logs for issued secrets, and the switch between the full proof (`make reliability`,
// RELIABILITY=full) and the short variant that `make test` runs. Tests use it; the handler never does.
package reliability

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

// EnvMode selects the variant: "full" runs every cell; anything else runs the short variant.
const EnvMode = "RELIABILITY"

// EnvOut names a directory where every table is also written, as <Table.File>.md (`make reliability`
// prints them from there, in file name order).
const EnvOut = "RELIABILITY_OUT"

// Full tells whether the full proof was asked for (RELIABILITY=full).
func Full() bool { return strings.EqualFold(strings.TrimSpace(os.Getenv(EnvMode)), "full") }

// Mode names the variant for table titles.
func Mode() string {
	if Full() {
		return "full"
	}
	return "short (RELIABILITY=full for every cell)"
}

// Phase is how far a tenant must have come when it is checked.
type Phase int

const (
	// Always holds at every moment, also right after a failed or killed run: the current Key Vault
	// version names a credential the application holds, with that credential's secretText as value, its
	// endDateTime as exp, and the application's appId as tag. While the secret is soft-deleted, the same
	// holds for the current version of the deleted secret: what a recovery brings back works. And no
	// credential that a replaced version names was removed inside its overlap (Want.Now before the
	// successor's creation plus the overlap): whoever still holds it keeps working.
	Always Phase = iota
	// Converged adds the desired state after a successful run: one application with the uniqueName, in
	// the organisation's audience, whose requiredResourceAccess is exactly the level's; one service
	// principal; exactly one app role assignment per permission of the level and none other; a secret,
	// live (not soft-deleted), whose current version is enabled.
	Converged
	// Cleaned adds, after a rotation that ran past the orphan rule: no credential that no version names
	// is older than appreg.OrphanAge, and no replaced credential outlived its overlap.
	Cleaned
)

func (p Phase) String() string {
	switch p {
	case Always:
		return "always"
	case Converged:
		return "converged"
	case Cleaned:
		return "cleaned"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// Want is the desired state the invariants are checked against.
type Want struct {
	UniqueName string        // "" -> "scepman"
	SecretName string        // "" -> the default secret name
	Level      int           // permission level
	Overlap    time.Duration // 0 -> 48 h
	Now        time.Time     // the business clock at the check (Cleaned only)
}

func (w Want) defaults() Want {
	if w.UniqueName == "" {
		w.UniqueName = "scepman"
	}
	if w.SecretName == "" {
		w.SecretName = "AppConfig--AuthConfig--ApplicationKey"
	}
	if w.Overlap == 0 {
		w.Overlap = 48 * time.Hour
	}
	return w
}

// Check returns every invariant of the phase that the state breaks; none when it holds.
func Check(s emulator.State, w Want, phase Phase) []string {
	w = w.defaults()
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }

	apps := 0
	for _, a := range s.Applications {
		if strings.EqualFold(a.UniqueName, w.UniqueName) {
			apps++
		}
	}
	app := s.Application(w.UniqueName)
	sec := s.Secret(w.SecretName)
	cur := sec.Current()
	deleted := deletedSecret(s, w.SecretName)

	// Always: the current version (of the live secret, else of the deleted one) names a credential the
	// application holds.
	checkCurrent := func(what string, cur *emulator.SecretVersion) {
		keyID := cur.Tags[appreg.TagKeyID]
		switch cred := appCred(app, keyID); {
		case app == nil:
			bad("Key Vault holds a %s (keyId %s) but there is no application %q", what, keyID, w.UniqueName)
		case cred == nil:
			bad("the %s names keyId %s, which the application lacks", what, keyID)
		case cur.Value != cred.SecretText:
			bad("the %s does not hold the secretText of credential %s", what, keyID)
		case !cur.Expires.Equal(cred.EndDateTime):
			bad("the %s's exp %s is not credential %s's endDateTime %s", what, cur.Expires, keyID, cred.EndDateTime)
		case cur.Tags[appreg.TagAppID] != app.AppID:
			bad("the %s's appId tag %q is not the application's %s", what, cur.Tags[appreg.TagAppID], app.AppID)
		}
	}
	var versions []emulator.SecretVersion
	if sec != nil {
		versions = sec.Versions
	}
	if cur != nil {
		checkCurrent("current version", cur)
	} else if deleted != nil && len(deleted.Versions) > 0 {
		versions = deleted.Versions
		checkCurrent("current version of the deleted secret", &deleted.Versions[len(deleted.Versions)-1])
	}
	// Always: a replaced version's credential stays for the overlap.
	for i := 0; app != nil && !w.Now.IsZero() && i+1 < len(versions); i++ {
		keyID, next := versions[i].Tags[appreg.TagKeyID], versions[i+1]
		if keyID == "" || strings.EqualFold(next.Tags[appreg.TagKeyID], keyID) || !w.Now.Before(next.Created.Add(w.Overlap)) {
			continue
		}
		if appCred(app, keyID) == nil {
			bad("credential %s was removed inside its overlap: version %s names it, replaced %s before the check", keyID, versions[i].Version, w.Now.Sub(next.Created))
		}
	}
	if phase == Always {
		return v
	}

	// Converged: the desired state of the level.
	switch {
	case apps != 1:
		bad("%d applications with uniqueName %q, want 1", apps, w.UniqueName)
	case app.SignInAudience != appreg.AudienceMyOrg:
		bad("signInAudience %q, want %s", app.SignInAudience, appreg.AudienceMyOrg)
	}
	want := appreg.PermissionsFor(w.Level)
	if app != nil {
		var got, exp []string
		for _, r := range app.RequiredResourceAccess {
			for _, a := range r.ResourceAccess {
				got = append(got, r.ResourceAppID+"/"+a.ID+"/"+a.Type)
			}
		}
		for _, p := range want {
			exp = append(exp, p.ResourceAppID+"/"+p.ID+"/"+appreg.AccessRole)
		}
		sort.Strings(got)
		sort.Strings(exp)
		if !slices.Equal(got, exp) {
			bad("requiredResourceAccess %v, want exactly level %d's %v", got, w.Level, exp)
		}
		sps := 0
		for _, sp := range s.ServicePrincipals {
			if strings.EqualFold(sp.AppID, app.AppID) {
				sps++
			}
		}
		if sps != 1 {
			bad("%d service principals of the application, want 1", sps)
		}
		if sp := s.ServicePrincipalByAppID(app.AppID); sp != nil {
			perRole := map[string]int{}
			for _, a := range s.AssignmentsOf(sp.ID) {
				perRole[a.ResourceID+"/"+a.AppRoleID]++
			}
			for _, p := range want {
				res := s.ServicePrincipalByAppID(p.ResourceAppID)
				if res == nil {
					continue // RESOURCE_UNAVAILABLE: nothing to grant
				}
				key := res.ID + "/" + p.ID
				if perRole[key] != 1 {
					bad("%d app role assignments of %s, want 1", perRole[key], p.Value)
				}
				delete(perRole, key)
			}
			for k, n := range perRole {
				bad("%d app role assignments outside the level (%s)", n, k)
			}
		}
	}
	switch {
	case cur == nil && deleted != nil:
		bad("Key Vault secret %s is deleted (soft delete) and was not recovered", w.SecretName)
	case cur == nil:
		bad("Key Vault holds no secret %s", w.SecretName)
	case !cur.Enabled:
		bad("the current version of secret %s is disabled: nobody can read it", w.SecretName)
	}
	if phase == Converged || app == nil {
		return v
	}

	// Cleaned: no orphan past the orphan rule, no replaced credential past its overlap.
	curKey := ""
	if cur != nil {
		curKey = cur.Tags[appreg.TagKeyID]
	}
	for _, c := range app.PasswordCredentials {
		if strings.EqualFold(c.KeyID, curKey) {
			continue
		}
		named := false
		for i, ver := range sec.Versions {
			if !strings.EqualFold(ver.Tags[appreg.TagKeyID], c.KeyID) {
				continue
			}
			named = true
			if i+1 < len(sec.Versions) && !w.Now.Before(sec.Versions[i+1].Created.Add(w.Overlap)) &&
				!strings.EqualFold(sec.Versions[i+1].Tags[appreg.TagKeyID], c.KeyID) {
				bad("credential %s outlived its overlap beside the current one", c.KeyID)
			}
		}
		if !named && !w.Now.Before(c.StartDateTime.Add(appreg.OrphanAge)) {
			bad("credential %s, which no version names, is older than %s", c.KeyID, appreg.OrphanAge)
		}
	}
	return v
}

// deletedSecret returns the soft-deleted secret with that name (recovering or not), or nil.
func deletedSecret(s emulator.State, name string) *emulator.DeletedSecret {
	for i := range s.DeletedSecrets {
		if strings.EqualFold(s.DeletedSecrets[i].Name, name) {
			return &s.DeletedSecrets[i]
		}
	}
	return nil
}

func appCred(app *emulator.Application, keyID string) *emulator.PasswordCredential {
	if app == nil || keyID == "" {
		return nil
	}
	return app.PasswordCredential(keyID)
}

// Unnamed lists the credentials of the application that no version of the secret names (the versions of
// a soft-deleted secret count: a recovery brings them back).
func Unnamed(s emulator.State, uniqueName, secretName string) []string {
	w := Want{UniqueName: uniqueName, SecretName: secretName}.defaults()
	app := s.Application(w.UniqueName)
	if app == nil {
		return nil
	}
	named := map[string]bool{}
	if sec := s.Secret(w.SecretName); sec != nil {
		for _, v := range sec.Versions {
			named[strings.ToLower(v.Tags[appreg.TagKeyID])] = true
		}
	}
	if d := deletedSecret(s, w.SecretName); d != nil {
		for _, v := range d.Versions {
			named[strings.ToLower(v.Tags[appreg.TagKeyID])] = true
		}
	}
	var out []string
	for _, c := range app.PasswordCredentials {
		if !named[strings.ToLower(c.KeyID)] {
			out = append(out, c.KeyID)
		}
	}
	return out
}

// Age moves every time of the state back by d, as if d had passed on the business clock: credentials'
// start and end, versions' created, updated, nbf and exp, applications' and assignments' created. Black-box
// tests run the handler on the wall clock; this is how they pass the orphan rule and the overlap.
func Age(t *emulator.Tenant, d time.Duration) {
	t.Mutate(func(s *emulator.State) {
		back := func(tm *time.Time) {
			if !tm.IsZero() {
				*tm = tm.Add(-d)
			}
		}
		for i := range s.Applications {
			a := &s.Applications[i]
			back(&a.CreatedDateTime)
			for j := range a.PasswordCredentials {
				back(&a.PasswordCredentials[j].StartDateTime)
				back(&a.PasswordCredentials[j].EndDateTime)
			}
		}
		for i := range s.AppRoleAssignments {
			back(&s.AppRoleAssignments[i].CreatedDateTime)
		}
		for i := range s.Secrets {
			for j := range s.Secrets[i].Versions {
				v := &s.Secrets[i].Versions[j]
				back(&v.Created)
				back(&v.Updated)
				back(&v.NotBefore)
				back(&v.Expires)
			}
		}
	})
}

// Verdict is a table cell's text for a list of violations.
func Verdict(violations []string) string {
	if len(violations) == 0 {
		return "held"
	}
	return "VIOLATED: " + strings.Join(violations, "; ")
}

// Table is a table the proof prints, as Markdown.
type Table struct {
	File   string // base name under RELIABILITY_OUT, e.g. "1-fault-matrix"
	Title  string
	Header []string
	Rows   [][]string
	Notes  []string // printed under the table
}

// Markdown renders the table with its title as a heading line and its notes as a list.
func (t Table) Markdown() string {
	var b strings.Builder
	if t.Title != "" {
		fmt.Fprintf(&b, "%s\n\n", t.Title)
	}
	esc := func(c string) string { return strings.ReplaceAll(c, "|", `\|`) }
	width := make([]int, len(t.Header))
	for i, h := range t.Header {
		width[i] = len([]rune(esc(h)))
	}
	for _, r := range t.Rows {
		for i := range min(len(r), len(width)) {
			width[i] = max(width[i], len([]rune(esc(r[i]))))
		}
	}
	line := func(cells []string) {
		b.WriteString("|")
		for i := range width {
			c := ""
			if i < len(cells) {
				c = esc(cells[i])
			}
			fmt.Fprintf(&b, " %s%s |", c, strings.Repeat(" ", max(0, width[i]-len([]rune(c)))))
		}
		b.WriteString("\n")
	}
	line(t.Header)
	b.WriteString("|")
	for _, w := range width {
		b.WriteString(strings.Repeat("-", w+2) + "|")
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		line(r)
	}
	if len(t.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range t.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

// Print writes the table to stdout (go test -v shows it) and to RELIABILITY_OUT when that is set.
func (t Table) Print() error {
	md := t.Markdown()
	fmt.Printf("\n%s\n", md)
	return Report(t.File, md)
}

// Report writes text to RELIABILITY_OUT/<file>.md when RELIABILITY_OUT is set.
func Report(file, text string) error {
	dir := os.Getenv(EnvOut)
	if dir == "" || file == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, file+".md"), []byte(text), 0o644)
}

// Hygiene collects every response and log line of a test run and the secrets the emulated tenants issued
// (secretTexts, Key Vault values, access tokens, identity headers), and finds any secret in the output.
type Hygiene struct {
	mu      sync.Mutex
	seen    [][]byte
	secrets []string
}

// Record keeps output to scan.
func (h *Hygiene) Record(b []byte) {
	h.mu.Lock()
	h.seen = append(h.seen, bytes.Clone(b))
	h.mu.Unlock()
}

// Writer is an io.Writer that records everything written to it (a log handler's output).
func (h *Hygiene) Writer() *hygieneWriter { return &hygieneWriter{h} }

type hygieneWriter struct{ h *Hygiene }

func (w *hygieneWriter) Write(p []byte) (int, error) {
	w.h.Record(p)
	return len(p), nil
}

// AddSecrets adds secrets to look for: tenant.IssuedSecrets() of every tenant.
func (h *Hygiene) AddSecrets(s ...string) {
	h.mu.Lock()
	h.secrets = append(h.secrets, s...)
	h.mu.Unlock()
}

// Scan returns how many secrets and outputs it compared, and one line per secret found in the output
// (its length and first three characters only).
func (h *Hygiene) Scan() (secrets, outputs int, hits []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.secrets {
		if len(s) < 8 {
			continue
		}
		for _, b := range h.seen {
			if bytes.Contains(b, []byte(s)) {
				hits = append(hits, fmt.Sprintf("an issued secret (%d chars, starts %q) appears in a response or log", len(s), s[:3]))
				break
			}
		}
	}
	return len(h.secrets), len(h.seen), hits
}
