// Package docsection writes generated text into a document between marker comments, so that the
// figures of BENCHMARKS.md and the tables of RELIABILITY.md come from the runs that measured them and
// cannot drift from the code: `<!-- TOOL:begin NAME -->` and `<!-- TOOL:end NAME -->` enclose section NAME;
// the lines between them are replaced and the rest of the document is kept.
package docsection

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// Markers of section name written by tool.
func markers(tool, name string) (begin, end string) {
	return fmt.Sprintf("<!-- %s:begin %s -->", tool, name), fmt.Sprintf("<!-- %s:end %s -->", tool, name)
}

// Write replaces the content between each section's markers in the file at path. When any section's
// markers are missing, repeated or out of order, it fails and leaves the file as it was.
func Write(path, tool string, sections map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading %s to write the tables into it: %w", path, err)
	}
	doc := string(b)
	names := make([]string, 0, len(sections))
	for name := range sections {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if doc, err = Replace(doc, tool, name, sections[name]); err != nil {
			return fmt.Errorf("writing the tables into %s: %w", path, err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("writing the tables into %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(doc), fi.Mode().Perm()); err != nil {
		return fmt.Errorf("writing the tables into %s: %w", path, err)
	}
	return nil
}

// Replace replaces what lies between the begin and end markers of section name with content, on lines of
// its own. Each marker must be there exactly once, begin before end.
func Replace(doc, tool, name, content string) (string, error) {
	begin, end := markers(tool, name)
	if n := strings.Count(doc, begin); n != 1 {
		return "", fmt.Errorf("%d lines %q, want 1", n, begin)
	}
	if n := strings.Count(doc, end); n != 1 {
		return "", fmt.Errorf("%d lines %q, want 1", n, end)
	}
	i, j := strings.Index(doc, begin)+len(begin), strings.Index(doc, end)
	if j < i {
		return "", fmt.Errorf("%q comes before %q", end, begin)
	}
	return doc[:i] + "\n" + strings.Trim(content, "\n") + "\n" + doc[j:], nil
}
