// Command bench measures the function app against the floor of each figure (issues 7, 11 and 13), prints
// one table, each figure beside its floor and its target, and writes the tables of BENCHMARKS.md between
// their marker comments: `make bench`.
//
//   - start-up: the first real call of a new process, a status at 50 ms RTT (the managed identity's
//     tokens, Key Vault's challenge, the reads and the sign-in check), beside the fewest round trips in
//     sequence it needs; and, as information only, exec of the handler to its first answer on GET /,
//     beside the same for benchfloor, the smallest Echo program that answers GET /;
//   - round trips to Graph and Key Vault and the sign-in's requests to the token service, counted at an
//     emulated tenant, for a fresh provision, a provision with nothing to do, a status, a rotate that is
//     not due and a rotate that renews, each beside the fewest requests the operation needs;
//   - latency of the same operations with a round-trip time added at the emulated tenant;
//   - peak RSS (VmHWM) of the handler over a provision, a status and a rotation;
//   - size of the stripped handler and of the deployment zip, beside the same for benchfloor;
//   - the fleet (issue 14): one compliance run over 200 instances in 20 emulated tenants at 50 ms RTT,
//     its wall time beside the floor of every instance's sequential round trips at the timers'
//     concurrency, its requests per instance and the handler's peak RSS.
//
// Everything runs on loopback against in-process emulated tenants; the handler is the real binary, run
// as the Functions host runs it (FUNCTIONS_CUSTOMHANDLER_PORT and the platform's managed identity
// variables), so what is counted is what production would send. Nothing here is a test: no figure fails
// the run, the table says PASS or MISS.
//
// The files: main.go runs the steps; startup.go measures the cold start; handler.go starts tenants and
// handler processes; sequence.go runs and counts the operations, with their floors; rows.go turns the
// counts into rows; fleet.go runs and counts the fleet; footprint.go measures memory and size; report.go prints the table and writes
// BENCHMARKS.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Targets of issues 7 and 11.
const (
	maxQuietRequests  = 2        // provision with nothing to do, status, rotate not due: Graph and Key Vault, after the first call
	maxSteadyRequests = 3        // status during the overlap (a second credential: the versions are listed)
	maxFreshRequests  = 12       // fresh provision, without retries
	maxRSS            = 64 << 20 // peak RSS of the handler
	maxZip            = 15 << 20 // deployment zip
	secretName        = "AppConfig--AuthConfig--ApplicationKey"
)

type options struct {
	handler, floor string // prebuilt executables; "" builds them
	starts, reps   int
	rtt            time.Duration
	pageSize       int
	distZip        string
	markdown       string // BENCHMARKS.md to write the tables into; "" writes nothing
	verbose        bool
	fleet          bool // measure the fleet of issue 14
}

func main() {
	var o options
	flag.StringVar(&o.handler, "handler", "", "handler executable (default: build ./handler into a temporary folder)")
	flag.StringVar(&o.floor, "floor", "", "floor executable (default: build ./handler/cmd/benchfloor)")
	flag.IntVar(&o.starts, "starts", 20, "cold starts of each program")
	flag.IntVar(&o.reps, "reps", 5, "repetitions of each operation sequence (medians are taken)")
	flag.DurationVar(&o.rtt, "rtt", 50*time.Millisecond, "round-trip time added at the emulated tenant for the latency rows")
	flag.IntVar(&o.pageSize, "page-size", 25, "page size of the emulated tenant's lists (Key Vault's default is 25)")
	flag.StringVar(&o.distZip, "dist-zip", "dist/appreg-func.zip", "deployment zip of `make package`, reported when present")
	flag.StringVar(&o.markdown, "markdown", "", "write the tables between the <!-- bench:begin NAME --> and <!-- bench:end NAME --> comments of this file (BENCHMARKS.md)")
	flag.BoolVar(&o.verbose, "v", false, "print the operations each figure counted")
	flag.BoolVar(&o.fleet, "fleet", true, fmt.Sprintf("measure one compliance run over %d instances in %d emulated tenants", fleetInstances, fleetTenants))
	flag.Parse()
	if o.starts < 1 || o.reps < 1 || o.rtt <= 0 {
		fmt.Fprintln(os.Stderr, "bench: -starts and -reps must be at least 1, -rtt more than 0")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	started := time.Now()
	tmp, err := os.MkdirTemp("", "appreg-bench-")
	if err != nil {
		return fmt.Errorf("making a temporary folder: %w", err)
	}
	defer os.RemoveAll(tmp)

	step("building")
	builds := []struct {
		out, pkg, ldflags string
		dst               *string
	}{
		{filepath.Join(tmp, "handler"), "./handler", "", &o.handler},
		{filepath.Join(tmp, "floor"), "./handler/cmd/benchfloor", "", &o.floor},
		{filepath.Join(tmp, "stripped", "handler"), "./handler", "-s -w", nil},
		{filepath.Join(tmp, "floor-stripped", "handler"), "./handler/cmd/benchfloor", "-s -w", nil},
	}
	for _, b := range builds {
		if b.dst != nil && *b.dst != "" {
			continue
		}
		if err := goBuild(b.out, b.pkg, b.ldflags); err != nil {
			return err
		}
		if b.dst != nil {
			*b.dst = b.out
		}
	}

	step("cold start: %d starts of each program", o.starts)
	cold, err := coldStarts(o)
	if err != nil {
		return err
	}
	step("operations: %d sequences without added latency", o.reps)
	plain, err := sequences(o, 0)
	if err != nil {
		return err
	}
	step("operations: %d sequences with %s added per round trip", o.reps, o.rtt)
	slow, err := sequences(o, o.rtt)
	if err != nil {
		return err
	}
	step("memory")
	mem, err := memoryRows(o, plain)
	if err != nil {
		return err
	}
	var fleet []row
	if o.fleet {
		step("fleet: provision, then compliance at %s RTT, over %d instances in %d tenants", o.rtt, fleetInstances, fleetTenants)
		warm, cold, err := runFleet(o, o.rtt)
		if err != nil {
			return fmt.Errorf("fleet: %w", err)
		}
		fleet = fleetRows(warm, cold, o.rtt)
	}
	step("size")
	size, err := sizeRows(o, tmp)
	if err != nil {
		return err
	}

	var rows []row
	rows = append(rows, startupRow(slow, o.rtt), cold)
	rows = append(rows, roundTripRows(plain)...)
	rows = append(rows, signInRows(plain)...)
	rows = append(rows, latencyRows(slow, o.rtt)...)
	rows = append(rows, mem...)
	rows = append(rows, size...)
	rows = append(rows, fleet...)

	r := report{
		rows:     rows,
		machine:  machine(o, time.Since(started)),
		floors:   floorsText(o),
		detail:   detailText(plain),
		verbose:  o.verbose,
		markdown: o.markdown,
	}
	return r.write()
}

func step(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func goBuild(out, pkg, ldflags string) error {
	args := []string{"build", "-o", out}
	if ldflags != "" {
		args = append(args, "-ldflags="+ldflags)
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}
