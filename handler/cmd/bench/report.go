package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/docsection"
)

// report is what a run prints, and writes into BENCHMARKS.md.
type report struct {
	rows     []row
	machine  string // when, where, how many
	floors   string // what each floor is made of
	detail   string // the operations behind each count
	verbose  bool   // print detail too
	markdown string // file to write the sections into; "" writes none
}

// write prints the report and, when asked, writes its sections into the markdown file.
func (r report) write() error {
	table := renderTable(r.rows)
	fmt.Println()
	fmt.Println(r.machine)
	fmt.Println()
	fmt.Print(table)
	fmt.Println()
	fmt.Println("Floors, the fewest requests each operation needs ($batch where Graph allows it, no read-backs; ‖ at once, → after):")
	fmt.Println(r.floors)
	if r.verbose {
		fmt.Println()
		fmt.Println(r.detail)
	}
	if r.markdown == "" {
		return nil
	}
	sections := map[string]string{
		"table":  table + "\n" + r.machine,
		"floors": "```\n" + r.floors + "\n```",
		"detail": "```\n" + r.detail + "\n```",
	}
	if err := docsection.Write(r.markdown, "bench", sections); err != nil {
		return err
	}
	step("wrote the tables into %s", r.markdown)
	return nil
}

// renderTable renders the rows as a Markdown table with aligned columns.
func renderTable(rows []row) string {
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(w, "| figure\t measured\t floor\t target\t verdict\t")
	fmt.Fprintln(w, "|---\t---\t---\t---\t---\t")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s\t %s\t %s\t %s\t %s\t\n", r.figure, r.measured, r.floor, r.target, r.verdict)
	}
	if err := w.Flush(); err != nil {
		panic(err) // a bytes.Buffer does not fail
	}
	return b.String()
}

// machine tells when and where the figures were taken.
func machine(o options, took time.Duration) string {
	return fmt.Sprintf("Run of %s (`make bench`; medians of %d cold starts and %d operation sequences; %s RTT added for the "+
		"latencies): %d CPUs (%s), %s, Linux %s; %s %s/%s; took %s.",
		time.Now().UTC().Format("2 January 2006"), o.starts, o.reps, ms(o.rtt), runtime.NumCPU(), cpuModel(), memTotal(),
		kernel(), runtime.Version(), runtime.GOOS, runtime.GOARCH, took.Round(time.Second))
}

// floorsText lists what each operation's floor is made of.
func floorsText(o options) string {
	var b strings.Builder
	for _, op := range opOrder {
		f := floors[op]
		fmt.Fprintf(&b, "  %-45s %d requests + %d sign-in tokens", op, f.requests, f.tokens)
		if f.metadata > 0 {
			fmt.Fprintf(&b, " + %d metadata", f.metadata)
		}
		fmt.Fprintf(&b, ", %d sequential (%s): %s\n", f.sequential, ms(time.Duration(f.sequential)*o.rtt), f.why)
	}
	return strings.TrimRight(b.String(), "\n")
}

// detailText lists the operations behind the counts of the first sequence.
func detailText(seqs []sequence) string {
	var b strings.Builder
	b.WriteString("Operations counted in the first sequence (requests inside a $batch count one by one beside graph.batch; " +
		"challenges and managed identity tokens left out):\n")
	for _, op := range opOrder {
		m := seqs[0].m[op]
		var parts []string
		for name, n := range m.ops {
			if n > 0 {
				parts = append(parts, fmt.Sprintf("%s×%d", strings.TrimPrefix(strings.TrimPrefix(name, "graph."), "keyvault."), n))
			}
		}
		slices.Sort(parts)
		fmt.Fprintf(&b, "  %-45s %s\n", op, strings.Join(parts, " "))
	}
	return strings.TrimRight(b.String(), "\n")
}

func median(v []time.Duration) time.Duration {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
}

func mib(n int64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}

// cpuModel is the first model name of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// memTotal is MemTotal of /proc/meminfo, in GiB.
func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown memory"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				return strconv.FormatFloat(float64(kb)/(1<<20), 'f', 1, 64) + " GiB"
			}
		}
	}
	return "unknown memory"
}

// kernel is the running kernel's release.
func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
