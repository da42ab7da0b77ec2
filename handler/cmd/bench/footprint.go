package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/pack"
)

// memoryRows is the handler's peak RSS over a sequence, beside the floor program's after it answered GET /.
func memoryRows(o options, seqs []sequence) ([]row, error) {
	var peaks []int64
	for _, s := range seqs {
		peaks = append(peaks, s.peakRSS)
	}
	slices.Sort(peaks)
	peak := peaks[len(peaks)/2]

	// The floor: the floor program after it answered GET /.
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.floor)
	cmd.Env = []string{"FUNCTIONS_CUSTOMHANDLER_PORT=" + strconv.Itoa(port)}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the floor program: %w", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait() // killed: the exit status says so
	}()
	for i := 0; !probe("127.0.0.1:" + strconv.Itoa(port)); i++ {
		if i > 30000 {
			return nil, errors.New("the floor program did not answer")
		}
		time.Sleep(time.Millisecond)
	}
	floor, err := peakRSS(cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	return []row{{
		figure:   "peak RSS (VmHWM) of the handler over provision, status, rotation",
		measured: mib(peak),
		floor:    mib(floor) + ", Echo answering GET /",
		target:   "< " + mib(maxRSS),
		verdict:  verdict(peak < maxRSS),
	}}, nil
}

// sizeRows are the sizes of the stripped handler and of its deployment zip, beside the floor program's.
func sizeRows(o options, tmp string) ([]row, error) {
	size := func(p string) (int64, error) {
		fi, err := os.Stat(p)
		if err != nil {
			return 0, fmt.Errorf("reading the size: %w", err)
		}
		return fi.Size(), nil
	}
	stripped, err := size(filepath.Join(tmp, "stripped", "handler"))
	if err != nil {
		return nil, err
	}
	floorStripped, err := size(filepath.Join(tmp, "floor-stripped", "handler"))
	if err != nil {
		return nil, err
	}
	zipOf := func(bin, name string) (int64, error) {
		out := filepath.Join(tmp, name+".zip")
		src := pack.Source{HostJSON: "host.json", Handler: bin, FunctionsDir: "functions"}
		if err := pack.Build(src, filepath.Join(tmp, name+"-stage"), out); err != nil {
			return 0, fmt.Errorf("packing %s: %w", name, err)
		}
		return size(out)
	}
	zip, err := zipOf(filepath.Join(tmp, "stripped", "handler"), "handler")
	if err != nil {
		return nil, err
	}
	floorZip, err := zipOf(filepath.Join(tmp, "floor-stripped", "handler"), "floor")
	if err != nil {
		return nil, err
	}
	rows := []row{
		{"size: stripped handler (-ldflags='-s -w')", mib(stripped), mib(floorStripped) + ", Echo answering GET /", "—", "—"},
		{"size: deployment zip (the packer, on the stripped handler)", mib(zip), mib(floorZip) + ", same package around the floor", "< " + mib(maxZip), verdict(zip < maxZip)},
	}
	if dz, err := size(o.distZip); err == nil {
		rows = append(rows, row{"size: " + o.distZip + " (make package, -trimpath, linux/amd64)", mib(dz), mib(floorZip), "< " + mib(maxZip), verdict(dz < maxZip)})
	}
	return rows, nil
}
