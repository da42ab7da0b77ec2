// Package report writes the tables of the reliability proof (RELIABILITY.md) that tests on the emulated
// tenant print, and says which variant runs: the full proof (`make reliability`, RELIABILITY=full) or the
// short one that `make test` runs. Tests use it; the handler never does.
package report

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	return Write(t.File, md)
}

// Write writes text to RELIABILITY_OUT/<file>.md when RELIABILITY_OUT is set.
func Write(file, text string) error {
	dir := os.Getenv(EnvOut)
	if dir == "" || file == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing the report %s: %w", file, err)
	}
	if err := os.WriteFile(filepath.Join(dir, file+".md"), []byte(text), 0o644); err != nil {
		return fmt.Errorf("writing the report %s: %w", file, err)
	}
	return nil
}
