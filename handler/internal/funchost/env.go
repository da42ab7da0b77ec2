package funchost

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// env is an environment as an ordered set of KEY=VALUE.
type env struct {
	keys []string
	vals map[string]string
}

func newEnv(list []string) *env {
	e := &env{vals: map[string]string{}}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		e.set(k, v)
	}
	return e
}

func (e *env) set(k, v string) {
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
}

func (e *env) lookup(k string) (string, bool) { v, ok := e.vals[k]; return v, ok }

func (e *env) get(k string) string { return e.vals[k] }

func (e *env) list() []string {
	out := make([]string, 0, len(e.keys))
	for _, k := range e.keys {
		out = append(out, k+"="+e.vals[k])
	}
	return out
}

// loadLocalSettings adds the Values of dir/local.settings.json that the environment does not set yet (the
// real environment wins, as with Core Tools), or, when there is no such file, those of
// local.settings.json.sample: the contract's defaults, which the real host would find among the app
// settings that the deployment sets. It returns the file read and the names it added. Missing files are
// no error.
func loadLocalSettings(dir string, e *env) (string, []string, error) {
	for _, name := range []string{"local.settings.json", "local.settings.json.sample"} {
		path := filepath.Join(dir, name)
		raw, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		added, err := addSettings(path, raw, e)
		return name, added, err
	}
	return "", nil, nil
}

func addSettings(path string, raw []byte, e *env) ([]string, error) {
	var doc struct {
		IsEncrypted bool                       `json:"IsEncrypted"`
		Values      map[string]json.RawMessage `json:"Values"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: not valid JSON: %w", path, err)
	}
	if doc.IsEncrypted {
		return nil, fmt.Errorf("%s: IsEncrypted is true; funchost reads plain values only", path)
	}
	names := make([]string, 0, len(doc.Values))
	for k := range doc.Values {
		names = append(names, k)
	}
	sort.Strings(names)
	var added []string
	for _, k := range names {
		var v string
		if err := json.Unmarshal(doc.Values[k], &v); err != nil {
			return nil, fmt.Errorf("%s: Values.%s: expected a string", path, k)
		}
		if _, ok := e.lookup(k); ok {
			continue
		}
		e.set(k, v)
		added = append(added, k)
	}
	return added, nil
}

var settingRE = regexp.MustCompile(`%([^%\s]+)%`)

// resolve replaces every %NAME% with the app setting NAME, like the host's binding expression resolver; a
// setting that is unset or empty is an error naming it.
func resolve(s string, e *env) (string, error) {
	var missing []string
	out := settingRE.ReplaceAllStringFunc(s, func(m string) string {
		name := m[1 : len(m)-1]
		v := strings.TrimSpace(e.get(name))
		if v == "" {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%q does not resolve to a value: set the app setting %s", s, strings.Join(missing, ", "))
	}
	return out, nil
}
