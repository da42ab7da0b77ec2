// Package pack builds and checks the deployment package of the function app: the folder the Functions host
// runs from and its zip. The layout is the one the host needs (reference section 6): host.json at the root,
// the handler at bin/handler with its executable bit, and one folder per function, holding its
// function.json, directly next to host.json. Build stages the folder and writes the zip from the same list
// of entries, so what is tested with a small fake executable is exactly what `make package` ships; Verify
// opens a zip and checks its layout, the executable bit and every function.json against the public contract.
package pack

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// HandlerPath is where the host.json of this project expects the handler, inside the package.
const HandlerPath = "bin/handler"

// Source names the inputs of a package.
type Source struct {
	HostJSON     string // host.json of the project
	Handler      string // the built handler executable (linux/amd64 for Azure)
	FunctionsDir string // folder with one sub-folder per function (functions/)
}

// entry is one file of the package.
type entry struct {
	name string      // slash-separated path inside the package
	src  string      // file it is read from
	mode fs.FileMode // permission bits in the package
}

// modTime is the fixed modification time of every zip entry, so that two builds of the same input give the
// same zip (zip cannot encode times before 1980).
var modTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// entries lists the files of the package in a stable order, failing on anything that does not fit the
// layout (a function folder without function.json, or with sub-folders the host would not read).
func (s Source) entries() ([]entry, error) {
	for _, f := range []struct{ what, path string }{{"host.json", s.HostJSON}, {"handler", s.Handler}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			return nil, fmt.Errorf("reading the %s: %w", f.what, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("the %s %s is not a regular file", f.what, f.path)
		}
	}
	list := []entry{
		{name: "host.json", src: s.HostJSON, mode: 0o644},
		{name: HandlerPath, src: s.Handler, mode: 0o755},
	}
	dirs, err := os.ReadDir(s.FunctionsDir)
	if err != nil {
		return nil, fmt.Errorf("reading the functions folder: %w", err)
	}
	var fns []entry
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(s.FunctionsDir, d.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading function %s: %w", d.Name(), err)
		}
		found := false
		for _, f := range files {
			if !f.Type().IsRegular() {
				return nil, fmt.Errorf("function %s: %s is not a regular file (the host reads one level only)", d.Name(), f.Name())
			}
			found = found || f.Name() == "function.json"
			fns = append(fns, entry{name: d.Name() + "/" + f.Name(), src: filepath.Join(s.FunctionsDir, d.Name(), f.Name()), mode: 0o644})
		}
		if !found {
			return nil, fmt.Errorf("function %s has no function.json", d.Name())
		}
	}
	if len(fns) == 0 {
		return nil, fmt.Errorf("the functions folder %s holds no function", s.FunctionsDir)
	}
	slices.SortFunc(fns, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	return append(list, fns...), nil
}

// Build stages the package in stageDir (created if missing; the handler is not copied when it already is
// stageDir/bin/handler) and writes the zip to zipPath. The zip keeps the executable bit of bin/handler in
// its Unix mode, whatever the platform it was built on.
func Build(s Source, stageDir, zipPath string) (err error) {
	list, err := s.entries()
	if err != nil {
		return err
	}
	for _, e := range list {
		if err := stage(e, filepath.Join(stageDir, filepath.FromSlash(e.name))); err != nil {
			return fmt.Errorf("staging %s: %w", e.name, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(zipPath), 0o755); err != nil {
		return fmt.Errorf("creating the folder of %s: %w", zipPath, err)
	}
	f, err := os.Create(zipPath)
	if err != nil {
		return fmt.Errorf("creating %s: %w", zipPath, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("writing %s: %w", zipPath, cerr)
		}
		if err != nil {
			_ = os.Remove(zipPath)
		}
	}()
	if err := write(list, f); err != nil {
		return fmt.Errorf("writing %s: %w", zipPath, err)
	}
	return nil
}

// stage copies one entry to dst with its package mode, unless dst is the source itself.
func stage(e entry, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if si, err := os.Stat(e.src); err == nil {
		if di, err := os.Stat(dst); err == nil && os.SameFile(si, di) {
			return os.Chmod(dst, e.mode)
		}
	}
	in, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, e.mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, e.mode) // the umask may have cleared bits at creation
}

// write writes the zip: a directory entry for each folder, then the files, all with Unix modes.
func write(list []entry, w io.Writer) error {
	zw := zip.NewWriter(w)
	seen := map[string]bool{}
	for _, e := range list {
		if dir := path.Dir(e.name); dir != "." && !seen[dir] {
			seen[dir] = true
			h := &zip.FileHeader{Name: dir + "/", Method: zip.Store, Modified: modTime}
			h.SetMode(fs.ModeDir | 0o755)
			if _, err := zw.CreateHeader(h); err != nil {
				return err
			}
		}
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: modTime}
		h.SetMode(e.mode) // sets the creator to Unix and the mode in the external attributes
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		in, err := os.Open(e.src)
		if err != nil {
			return err
		}
		_, err = io.Copy(fw, in)
		in.Close()
		if err != nil {
			return err
		}
	}
	return zw.Close()
}

// VerifyFile opens the zip at path and verifies it.
func VerifyFile(zipPath string, opts VerifyOptions) error {
	r, err := zip.OpenReader(zipPath)
	if err != nil {
		return fmt.Errorf("opening %s: %w", zipPath, err)
	}
	defer r.Close()
	if err := Verify(&r.Reader, opts); err != nil {
		return fmt.Errorf("%s: %w", zipPath, err)
	}
	return nil
}

// errorList gathers every problem found, so that one run names them all.
type errorList []error

func (l *errorList) add(format string, args ...any) { *l = append(*l, fmt.Errorf(format, args...)) }
func (l errorList) err() error                      { return errors.Join(l...) }
