// Command reldoc writes the tables of the last `make reliability` run into RELIABILITY.md: each file
// NAME.md of the run's output folder goes between the document's `<!-- reliability:begin NAME -->` and
// `<!-- reliability:end NAME -->` markers (package docsection). A table without its markers, or markers
// without a table of this run, is an error, so that no table is silently dropped or left stale.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/scepman-appreg/appreg/handler/internal/docsection"
)

func main() {
	dir := flag.String("dir", "bin/reliability", "the folder of the run's tables (RELIABILITY_OUT)")
	doc := flag.String("doc", "RELIABILITY.md", "the document to write them into")
	flag.Parse()
	if err := write(*dir, *doc); err != nil {
		fmt.Fprintln(os.Stderr, "reldoc:", err)
		os.Exit(1)
	}
}

// marker finds the section names of a document.
var marker = regexp.MustCompile(`<!-- reliability:begin ([^ ]+) -->`)

func write(dir, doc string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no tables in %s: run make reliability first", dir)
	}
	sections := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		sections[strings.TrimSuffix(filepath.Base(f), ".md")] = string(b)
	}
	b, err := os.ReadFile(doc)
	if err != nil {
		return err
	}
	var missing []string
	for _, m := range marker.FindAllStringSubmatch(string(b), -1) {
		if _, ok := sections[m[1]]; !ok {
			missing = append(missing, m[1])
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s has sections this run wrote no table for: %s", doc, strings.Join(missing, ", "))
	}
	if err := docsection.Write(doc, "reliability", sections); err != nil {
		return err
	}
	fmt.Printf("reldoc: wrote %d tables into %s\n", len(sections), doc)
	return nil
}
