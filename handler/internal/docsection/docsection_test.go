package docsection_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepman-appreg/appreg/handler/internal/docsection"
)

func TestReplaceSection(t *testing.T) {
	tests := []struct {
		name, doc, want, wantErr string
	}{
		{
			name: "replaces between the markers, keeps the prose",
			doc:  "# B\n\nprose\n<!-- bench:begin table -->\nold\nrows\n<!-- bench:end table -->\nmore prose\n",
			want: "# B\n\nprose\n<!-- bench:begin table -->\nnew\n<!-- bench:end table -->\nmore prose\n",
		},
		{
			name: "fills an empty section",
			doc:  "<!-- bench:begin table --><!-- bench:end table -->\n",
			want: "<!-- bench:begin table -->\nnew\n<!-- bench:end table -->\n",
		},
		{
			name:    "no begin marker",
			doc:     "prose\n<!-- bench:end table -->\n",
			wantErr: "0 lines \"<!-- bench:begin table -->\"",
		},
		{
			name:    "no end marker",
			doc:     "<!-- bench:begin table -->\nprose\n",
			wantErr: "0 lines \"<!-- bench:end table -->\"",
		},
		{
			name:    "two begin markers",
			doc:     "<!-- bench:begin table -->\n<!-- bench:begin table -->\n<!-- bench:end table -->\n",
			wantErr: "2 lines",
		},
		{
			name:    "end before begin",
			doc:     "<!-- bench:end table -->\n<!-- bench:begin table -->\n",
			wantErr: "comes before",
		},
		{
			name:    "another section's markers do not count",
			doc:     "<!-- bench:begin floors -->\n<!-- bench:end floors -->\n",
			wantErr: "0 lines \"<!-- bench:begin table -->\"",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := docsection.Replace(tt.doc, "bench", "table", "\nnew\n")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("replaceSection error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("replaceSection: %v", err)
			}
			if got != tt.want {
				t.Errorf("replaceSection =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestWriteSections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	doc := "intro\n<!-- bench:begin table -->\n<!-- bench:end table -->\nmiddle\n<!-- bench:begin floors -->\nx\n<!-- bench:end floors -->\nend\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := docsection.Write(path, "bench", map[string]string{"table": "| a |", "floors": "f"}); err != nil {
		t.Fatalf("writeSections: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "intro\n<!-- bench:begin table -->\n| a |\n<!-- bench:end table -->\nmiddle\n<!-- bench:begin floors -->\nf\n<!-- bench:end floors -->\nend\n"
	if string(b) != want {
		t.Errorf("file after writeSections =\n%q\nwant\n%q", b, want)
	}

	// A missing section leaves the file as it was.
	if err := docsection.Write(path, "bench", map[string]string{"detail": "d"}); err == nil {
		t.Error("writeSections with a section the file lacks: no error, want one")
	}
	if b2, _ := os.ReadFile(path); string(b2) != want {
		t.Errorf("file after a failed writeSections =\n%q\nwant it unchanged", b2)
	}
}
