package pack

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
)

// Binding is one binding of a function.json, with the fields the contract fixes.
type Binding struct {
	Type      string   `json:"type"`
	Direction string   `json:"direction"`
	Name      string   `json:"name"`
	AuthLevel string   `json:"authLevel,omitempty"`
	Methods   []string `json:"methods,omitempty"`
	Route     string   `json:"route,omitempty"`
	Schedule  string   `json:"schedule,omitempty"`
}

// Contract is every function of the public interface (spec/interface.md, "Functions") with its bindings,
// exactly. The HTTP functions have one httpTrigger in and one http out, nothing else, because the host
// forwards the original request only for that shape (enableForwardingHttpRequest).
var Contract = map[string][]Binding{
	"provision": {
		{Type: "httpTrigger", Direction: "in", Name: "req", AuthLevel: "function", Methods: []string{"post"}, Route: "provision"},
		{Type: "http", Direction: "out", Name: "res"},
	},
	"status": {
		{Type: "httpTrigger", Direction: "in", Name: "req", AuthLevel: "function", Methods: []string{"get"}, Route: "status"},
		{Type: "http", Direction: "out", Name: "res"},
	},
	"compliance": {
		{Type: "timerTrigger", Direction: "in", Name: "timer", Schedule: "%APPREG_COMPLIANCE_SCHEDULE%"},
	},
	"rotate": {
		{Type: "timerTrigger", Direction: "in", Name: "timer", Schedule: "%APPREG_ROTATION_SCHEDULE%"},
	},
}

// VerifyOptions tunes Verify.
type VerifyOptions struct {
	// RequireLinuxAMD64 also checks that bin/handler is a statically linked 64-bit x86 ELF executable, as
	// Azure runs it. Off for packages built around a fake executable.
	RequireLinuxAMD64 bool
}

// Verify checks a package: host.json at the root pointing at bin/handler with request forwarding on,
// bin/handler present and executable (Unix mode 0755 in the zip), exactly the functions of Contract, each a
// folder directly under the root whose function.json parses and equals its contract, and nothing else. It
// reports every problem it finds.
func Verify(r *zip.Reader, opts VerifyOptions) error {
	var errs errorList
	files := map[string]*zip.File{}
	for _, f := range r.File {
		name := f.Name
		if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || slices.Contains(strings.Split(name, "/"), "..") {
			errs.add("entry %q: not a clean relative path", name)
			continue
		}
		if strings.HasSuffix(name, "/") {
			continue // directory entries are optional
		}
		if _, dup := files[name]; dup {
			errs.add("entry %q appears twice", name)
		}
		files[name] = f
	}

	if f := files["host.json"]; f == nil {
		errs.add("host.json is missing at the root")
	} else if err := checkHostJSON(f); err != nil {
		errs.add("host.json: %w", err)
	}

	if f := files[HandlerPath]; f == nil {
		errs.add("%s is missing", HandlerPath)
	} else {
		mode := f.Mode()
		if !mode.IsRegular() {
			errs.add("%s is not a regular file (mode %v)", HandlerPath, mode)
		} else if mode.Perm()&0o111 != 0o111 {
			errs.add("%s is not executable: mode %v, want 0755 (build the zip with the Unix mode set)", HandlerPath, mode.Perm())
		}
		if opts.RequireLinuxAMD64 {
			if err := checkELF(f); err != nil {
				errs.add("%s: %w", HandlerPath, err)
			}
		}
	}

	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if name == "host.json" || name == HandlerPath {
			continue
		}
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		if dir == "" || strings.Contains(dir, "/") {
			errs.add("unexpected entry %q: the package holds host.json, %s and <function>/function.json only", name, HandlerPath)
			continue
		}
		want, ok := Contract[dir]
		if !ok {
			errs.add("unexpected function folder %q: the contract has %s", dir, strings.Join(slices.Sorted(maps.Keys(Contract)), ", "))
			continue
		}
		if base != "function.json" {
			errs.add("unexpected file %q in function %s", name, dir)
			continue
		}
		seen[dir] = true
		if err := checkFunction(files[name], want); err != nil {
			errs.add("function %s: %w", dir, err)
		}
	}
	for _, fn := range slices.Sorted(maps.Keys(Contract)) {
		if !seen[fn] {
			errs.add("function %s is missing: want %s/function.json next to host.json", fn, fn)
		}
	}
	return errs.err()
}

func read(f *zip.File) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// checkHostJSON checks the parts of host.json the package relies on.
func checkHostJSON(f *zip.File) error {
	data, err := read(f)
	if err != nil {
		return err
	}
	var h struct {
		Version       string `json:"version"`
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
			EnableForwardingHTTPRequest bool `json:"enableForwardingHttpRequest"`
		} `json:"customHandler"`
		Extensions struct {
			HTTP struct {
				RoutePrefix *string `json:"routePrefix"`
			} `json:"http"`
		} `json:"extensions"`
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return fmt.Errorf("does not parse: %w", err)
	}
	var errs errorList
	if h.Version != "2.0" {
		errs.add("version is %q, want \"2.0\"", h.Version)
	}
	if p := h.CustomHandler.Description.DefaultExecutablePath; p != HandlerPath {
		errs.add("customHandler.description.defaultExecutablePath is %q, want %q", p, HandlerPath)
	}
	if !h.CustomHandler.EnableForwardingHTTPRequest {
		errs.add("customHandler.enableForwardingHttpRequest is not true")
	}
	if p := h.Extensions.HTTP.RoutePrefix; p != nil && *p != "api" {
		errs.add("extensions.http.routePrefix is %q, want \"api\" (routes are /api/provision and /api/status)", *p)
	}
	return errs.err()
}

// checkFunction parses a function.json strictly and compares its bindings with the contract.
func checkFunction(f *zip.File, want []Binding) error {
	data, err := read(f)
	if err != nil {
		return err
	}
	var doc struct {
		Bindings []Binding `json:"bindings"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("function.json does not parse as the contract's shape: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("function.json holds more than one JSON value")
	}
	got := doc.Bindings
	for i := range got {
		for j, m := range got[i].Methods {
			got[i].Methods[j] = strings.ToLower(m) // the host matches methods case-insensitively
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("has %d bindings, want %d: got %s, want %s", len(got), len(want), show(got), show(want))
	}
	var errs errorList
	for i := range want {
		if !bindingEqual(got[i], want[i]) {
			errs.add("binding %d: got %s, want %s", i, show(got[i]), show(want[i]))
		}
	}
	return errs.err()
}

func bindingEqual(a, b Binding) bool {
	return a.Type == b.Type && a.Direction == b.Direction && a.Name == b.Name && a.AuthLevel == b.AuthLevel &&
		slices.Equal(a.Methods, b.Methods) && a.Route == b.Route && a.Schedule == b.Schedule
}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// checkELF checks that the handler is what Azure's linux/amd64 workers run: a 64-bit little-endian x86-64
// ELF executable without a dynamic loader (CGO_ENABLED=0), so it needs no library of the worker image.
func checkELF(f *zip.File) error {
	data, err := read(f)
	if err != nil {
		return err
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not an ELF executable (built for another OS?): %w", err)
	}
	defer ef.Close()
	var errs errorList
	if ef.Class != elf.ELFCLASS64 || ef.Data != elf.ELFDATA2LSB {
		errs.add("ELF class %v, %v: want 64-bit little-endian", ef.Class, ef.Data)
	}
	if ef.Machine != elf.EM_X86_64 {
		errs.add("built for %v: want EM_X86_64 (GOARCH=amd64)", ef.Machine)
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		errs.add("ELF type %v: want an executable", ef.Type)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			errs.add("dynamically linked (has a program interpreter): build with CGO_ENABLED=0")
			break
		}
	}
	return errs.err()
}
