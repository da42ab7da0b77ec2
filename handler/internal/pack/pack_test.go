package pack

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the project root, where host.json and functions/ live.
const repoRoot = "../../.."

// fakeHandler writes a small stand-in for the 25 MB handler, so that the packing path is tested without
// building msgraph-sdk-go.
func fakeHandler(t *testing.T, perm fs.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "handler")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho fake handler\n"), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

func repoSource(t *testing.T, handler string) Source {
	t.Helper()
	return Source{
		HostJSON:     filepath.Join(repoRoot, "host.json"),
		Handler:      handler,
		FunctionsDir: filepath.Join(repoRoot, "functions"),
	}
}

func openZip(t *testing.T, p string) *zip.ReadCloser {
	t.Helper()
	r, err := zip.OpenReader(p)
	if err != nil {
		t.Fatalf("opening %s: %v", p, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestBuildLayout(t *testing.T) {
	for _, tc := range []struct {
		name string
		perm fs.FileMode
	}{
		{"executable handler", 0o755},
		{"handler without its executable bit gets 0755", 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			stage := filepath.Join(dir, "dist")
			out := filepath.Join(stage, "appreg-func.zip")
			if err := Build(repoSource(t, fakeHandler(t, tc.perm)), stage, out); err != nil {
				t.Fatalf("Build: %v", err)
			}

			r := openZip(t, out)
			var names []string
			for _, f := range r.File {
				names = append(names, f.Name)
			}
			want := []string{
				"host.json", "bin/", "bin/handler",
				"compliance/", "compliance/function.json",
				"provision/", "provision/function.json",
				"rotate/", "rotate/function.json",
				"status/", "status/function.json",
			}
			if !slices.Equal(names, want) {
				t.Errorf("zip entries:\n got %q\nwant %q", names, want)
			}
			for _, f := range r.File {
				if f.Name != HandlerPath {
					continue
				}
				if got := f.Mode(); got != 0o755 {
					t.Errorf("zip mode of %s = %v, want -rwxr-xr-x", f.Name, got)
				}
				if creator := f.CreatorVersion >> 8; creator != 3 {
					t.Errorf("zip creator of %s = %d, want 3 (Unix), or unzip ignores the mode", f.Name, creator)
				}
				if got := fs.FileMode(f.ExternalAttrs >> 16).Perm(); got != 0o755 {
					t.Errorf("external attributes of %s hold %v, want 0755", f.Name, got)
				}
			}
			if err := Verify(&r.Reader, VerifyOptions{}); err != nil {
				t.Errorf("Verify of a fresh build: %v", err)
			}

			// The staged folder is the same layout, as the host would see it after extraction.
			for _, name := range []string{"host.json", "bin/handler", "compliance/function.json", "provision/function.json",
				"rotate/function.json", "status/function.json"} {
				fi, err := os.Stat(filepath.Join(stage, filepath.FromSlash(name)))
				if err != nil {
					t.Errorf("staged %s: %v", name, err)
					continue
				}
				wantPerm := fs.FileMode(0o644)
				if name == HandlerPath {
					wantPerm = 0o755
				}
				if fi.Mode().Perm() != wantPerm {
					t.Errorf("staged %s has mode %v, want %v", name, fi.Mode().Perm(), wantPerm)
				}
			}
		})
	}
}

func TestBuildIsReproducible(t *testing.T) {
	src := repoSource(t, fakeHandler(t, 0o755))
	var zips [][]byte
	for i := range 2 {
		out := filepath.Join(t.TempDir(), "p.zip")
		if err := Build(src, filepath.Join(t.TempDir(), "stage"), out); err != nil {
			t.Fatalf("Build %d: %v", i, err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		zips = append(zips, b)
	}
	if !bytes.Equal(zips[0], zips[1]) {
		t.Errorf("two builds of the same input differ (%d and %d bytes)", len(zips[0]), len(zips[1]))
	}
}

// make package builds the handler straight into dist/bin/handler: staging must not copy it onto itself.
func TestBuildHandlerAlreadyStaged(t *testing.T) {
	stage := t.TempDir()
	h := filepath.Join(stage, "bin", "handler")
	if err := os.MkdirAll(filepath.Dir(h), 0o755); err != nil {
		t.Fatal(err)
	}
	content := []byte("#!/bin/sh\nexit 0\n")
	if err := os.WriteFile(h, content, 0o700); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(stage, "appreg-func.zip")
	if err := Build(repoSource(t, h), stage, out); err != nil {
		t.Fatalf("Build: %v", err)
	}
	got, err := os.ReadFile(h)
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("staged handler = %q, %v; want it untouched %q", got, err, content)
	}
	if err := VerifyFile(out, VerifyOptions{}); err != nil {
		t.Errorf("VerifyFile: %v", err)
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, fnDir string) // changes a copy of functions/
		handler func(t *testing.T) string
		want    string
	}{
		{
			name:  "missing handler",
			setup: func(*testing.T, string) {},
			handler: func(t *testing.T) string {
				return filepath.Join(t.TempDir(), "no-such-handler")
			},
			want: "reading the handler",
		},
		{
			name: "function folder without function.json",
			setup: func(t *testing.T, fnDir string) {
				must(t, os.Mkdir(filepath.Join(fnDir, "empty"), 0o755))
				must(t, os.WriteFile(filepath.Join(fnDir, "empty", "readme.txt"), []byte("x"), 0o644))
			},
			want: "function empty has no function.json",
		},
		{
			name: "nested folder inside a function",
			setup: func(t *testing.T, fnDir string) {
				must(t, os.Mkdir(filepath.Join(fnDir, "status", "sub"), 0o755))
			},
			want: "reads one level only",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fnDir := copyFunctions(t)
			tc.setup(t, fnDir)
			h := fakeHandler(t, 0o755)
			if tc.handler != nil {
				h = tc.handler(t)
			}
			src := Source{HostJSON: filepath.Join(repoRoot, "host.json"), Handler: h, FunctionsDir: fnDir}
			out := filepath.Join(t.TempDir(), "p.zip")
			err := Build(src, filepath.Join(t.TempDir(), "stage"), out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build error = %v, want one containing %q", err, tc.want)
			}
			if _, statErr := os.Stat(out); statErr == nil {
				t.Errorf("a failed Build left %s behind", out)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// copyFunctions copies the project's functions/ into a temporary folder the test may change.
func copyFunctions(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "functions")
	src := filepath.Join(repoRoot, "functions")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// zipEntry is one file of a hand-made package.
type zipEntry struct {
	body string
	mode fs.FileMode
}

// goodEntries reads the project's real host.json and function.json files into a package description that
// Verify accepts; the cases below change one thing each.
func goodEntries(t *testing.T) map[string]zipEntry {
	t.Helper()
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(repoRoot, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	m := map[string]zipEntry{
		"host.json":   {read("host.json"), 0o644},
		"bin/handler": {"#!/bin/sh\n", 0o755},
	}
	for fn := range Contract {
		m[fn+"/function.json"] = zipEntry{read("functions/" + fn + "/function.json"), 0o644}
	}
	return m
}

func makeZip(t *testing.T, entries map[string]zipEntry) *zip.Reader {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		h := &zip.FileHeader{Name: n, Method: zip.Deflate}
		h.SetMode(entries[n].mode)
		w, err := zw.CreateHeader(h)
		must(t, err)
		_, err = w.Write([]byte(entries[n].body))
		must(t, err)
	}
	must(t, zw.Close())
	r, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	must(t, err)
	return r
}

func TestVerify(t *testing.T) {
	const timerBinding = `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"%s"}]}`
	httpFn := func(authLevel, method, route string) string {
		return `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"` + authLevel +
			`","methods":["` + method + `"],"route":"` + route + `"},{"type":"http","direction":"out","name":"res"}]}`
	}
	for _, tc := range []struct {
		name   string
		change func(m map[string]zipEntry)
		want   []string // substrings of the error; none: Verify must pass
	}{
		{name: "the project's own package", change: func(map[string]zipEntry) {}},
		{name: "methods in upper case", change: func(m map[string]zipEntry) {
			m["provision/function.json"] = zipEntry{httpFn("function", "POST", "provision"), 0o644}
		}},
		{name: "handler not executable", change: func(m map[string]zipEntry) {
			m["bin/handler"] = zipEntry{"#!/bin/sh\n", 0o644}
		}, want: []string{"bin/handler is not executable"}},
		{name: "handler missing", change: func(m map[string]zipEntry) {
			delete(m, "bin/handler")
		}, want: []string{"bin/handler is missing"}},
		{name: "host.json missing", change: func(m map[string]zipEntry) {
			delete(m, "host.json")
		}, want: []string{"host.json is missing"}},
		{name: "host.json points elsewhere and does not forward", change: func(m map[string]zipEntry) {
			m["host.json"] = zipEntry{`{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`, 0o644}
		}, want: []string{`defaultExecutablePath is "handler"`, "enableForwardingHttpRequest is not true"}},
		{name: "function missing", change: func(m map[string]zipEntry) {
			delete(m, "rotate/function.json")
		}, want: []string{"function rotate is missing"}},
		{name: "functions one level too deep", change: func(m map[string]zipEntry) {
			m["functions/status/function.json"] = m["status/function.json"]
			delete(m, "status/function.json")
		}, want: []string{`unexpected entry "functions/status/function.json"`, "function status is missing"}},
		{name: "function outside the contract", change: func(m map[string]zipEntry) {
			m["debug/function.json"] = m["status/function.json"]
		}, want: []string{`unexpected function folder "debug"`}},
		{name: "stray file in a function folder", change: func(m map[string]zipEntry) {
			m["status/run.sh"] = zipEntry{"x", 0o644}
		}, want: []string{`unexpected file "status/run.sh"`}},
		{name: "anonymous HTTP function", change: func(m map[string]zipEntry) {
			m["status/function.json"] = zipEntry{httpFn("anonymous", "get", "status"), 0o644}
		}, want: []string{"function status: binding 0", `"authLevel":"anonymous"`}},
		{name: "wrong method", change: func(m map[string]zipEntry) {
			m["provision/function.json"] = zipEntry{httpFn("function", "get", "provision"), 0o644}
		}, want: []string{"function provision: binding 0"}},
		{name: "wrong route", change: func(m map[string]zipEntry) {
			m["status/function.json"] = zipEntry{httpFn("function", "get", "api/status"), 0o644}
		}, want: []string{"function status: binding 0", `"route":"api/status"`}},
		{name: "extra output binding stops request forwarding", change: func(m map[string]zipEntry) {
			m["provision/function.json"] = zipEntry{`{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"function","methods":["post"],"route":"provision"},{"type":"http","direction":"out","name":"res"},{"type":"queue","direction":"out","name":"q"}]}`, 0o644}
		}, want: []string{"function provision: has 3 bindings, want 2"}},
		{name: "timer binding renamed", change: func(m map[string]zipEntry) {
			m["rotate/function.json"] = zipEntry{`{"bindings":[{"type":"timerTrigger","direction":"in","name":"myTimer","schedule":"%APPREG_ROTATION_SCHEDULE%"}]}`, 0o644}
		}, want: []string{"function rotate: binding 0", `"name":"myTimer"`}},
		{name: "literal schedule instead of the app setting", change: func(m map[string]zipEntry) {
			m["compliance/function.json"] = zipEntry{strings.Replace(timerBinding, "%s", "0 0 */6 * * *", 1), 0o644}
		}, want: []string{"function compliance: binding 0"}},
		{name: "schedules swapped", change: func(m map[string]zipEntry) {
			m["compliance/function.json"] = zipEntry{strings.Replace(timerBinding, "%s", "%APPREG_ROTATION_SCHEDULE%", 1), 0o644}
		}, want: []string{"function compliance: binding 0"}},
		{name: "unknown field", change: func(m map[string]zipEntry) {
			m["rotate/function.json"] = zipEntry{`{"disabled":true,"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"%APPREG_ROTATION_SCHEDULE%"}]}`, 0o644}
		}, want: []string{"function rotate", `unknown field "disabled"`}},
		{name: "function.json not JSON", change: func(m map[string]zipEntry) {
			m["status/function.json"] = zipEntry{"bindings: []", 0o644}
		}, want: []string{"function status: function.json does not parse"}},
		{name: "path escaping the package", change: func(m map[string]zipEntry) {
			m["../host.json"] = m["host.json"]
		}, want: []string{`entry "../host.json": not a clean relative path`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := goodEntries(t)
			tc.change(m)
			err := Verify(makeZip(t, m), VerifyOptions{})
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Verify: %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify passed, want an error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Verify error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// elfHeader builds a minimal ELF64 little-endian executable header for machine, with a PT_INTERP program
// header when dynamic is set: enough for debug/elf and the checks, without building a real binary.
func elfHeader(machine elf.Machine, dynamic bool) string {
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT), 0})
	b.Write(make([]byte, 8))
	le := binary.LittleEndian
	phnum, phoff := uint16(0), uint64(0)
	if dynamic {
		phnum, phoff = 1, 64
	}
	for _, v := range []any{uint16(elf.ET_EXEC), uint16(machine), uint32(elf.EV_CURRENT), uint64(0), phoff, uint64(0),
		uint32(0), uint16(64), uint16(56), phnum, uint16(64), uint16(0), uint16(0)} {
		_ = binary.Write(&b, le, v)
	}
	if dynamic {
		for _, v := range []any{uint32(elf.PT_INTERP), uint32(elf.PF_R), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(1)} {
			_ = binary.Write(&b, le, v)
		}
	}
	return b.String()
}

func TestVerifyLinuxAMD64(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler string
		want    string // "" for no error
	}{
		{"static x86-64 executable", elfHeader(elf.EM_X86_64, false), ""},
		{"arm64 executable", elfHeader(elf.EM_AARCH64, false), "want EM_X86_64"},
		{"dynamically linked", elfHeader(elf.EM_X86_64, true), "CGO_ENABLED=0"},
		{"shell script", "#!/bin/sh\n", "not an ELF executable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := goodEntries(t)
			m["bin/handler"] = zipEntry{tc.handler, 0o755}
			err := Verify(makeZip(t, m), VerifyOptions{RequireLinuxAMD64: true})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Verify: %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Verify error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestBuiltPackage checks the zip that `make package` built, when there is one: the real handler, with the
// linux/amd64 check on. make package runs the same check itself; this keeps a stale dist/ honest.
func TestBuiltPackage(t *testing.T) {
	p := filepath.Join(repoRoot, "dist", "appreg-func.zip")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no %s (run make package): %v", p, err)
	}
	if err := VerifyFile(p, VerifyOptions{RequireLinuxAMD64: true}); err != nil {
		t.Error(err)
	}
}
