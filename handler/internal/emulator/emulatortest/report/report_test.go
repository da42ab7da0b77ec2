package report

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTableAndWrite(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvOut, dir)
	tab := Table{File: "9-test", Title: "T", Header: []string{"a", "b"}, Rows: [][]string{{"x|y", "✓"}}, Notes: []string{"n"}}
	want := "T\n\n| a    | b |\n|------|---|\n| x\\|y | ✓ |\n\n- n\n"
	if got := tab.Markdown(); got != want {
		t.Errorf("Markdown:\n%s\nwant\n%s", got, want)
	}
	if err := tab.Print(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "9-test.md")); err != nil || string(b) != want {
		t.Errorf("report file = %q, %v; want the table", b, err)
	}
}

func TestMode(t *testing.T) {
	tests := []struct {
		env  string
		full bool
	}{{"", false}, {"full", true}, {" FULL ", true}, {"short", false}}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(EnvMode, tt.env)
			if got := Full(); got != tt.full {
				t.Errorf("Full() with %s=%q = %v, want %v", EnvMode, tt.env, got, tt.full)
			}
		})
	}
}
