// Command pack stages the deployment package and zips it with the executable bit kept (package pack), then
// checks the zip it wrote: `make package`. With -verify it only checks an existing zip.
//
//	pack -handler dist/bin/handler -stage dist -out dist/appreg-func.zip
//	pack -verify dist/appreg-func.zip
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/scepman-appreg/appreg/handler/internal/pack"
)

func main() {
	host := flag.String("host", "host.json", "the project's host.json")
	handler := flag.String("handler", "dist/bin/handler", "the handler executable, built for linux/amd64")
	functions := flag.String("functions", "functions", "folder with one sub-folder per function")
	stage := flag.String("stage", "dist", "folder to stage the package in")
	out := flag.String("out", "dist/appreg-func.zip", "zip to write")
	verify := flag.String("verify", "", "only verify this zip, then exit")
	anyArch := flag.Bool("any-arch", false, "do not require bin/handler to be a static linux/amd64 executable")
	flag.Parse()

	opts := pack.VerifyOptions{RequireLinuxAMD64: !*anyArch}
	zipPath := *verify
	if zipPath == "" {
		src := pack.Source{HostJSON: *host, Handler: *handler, FunctionsDir: *functions}
		if err := pack.Build(src, *stage, *out); err != nil {
			fmt.Fprintln(os.Stderr, "pack:", err)
			os.Exit(1)
		}
		zipPath = *out
	}
	if err := pack.VerifyFile(zipPath, opts); err != nil {
		fmt.Fprintln(os.Stderr, "pack: the package does not match the contract:\n"+err.Error())
		os.Exit(1)
	}
	fi, err := os.Stat(zipPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pack:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %d bytes, layout, executable bit and function.json contract checked\n", zipPath, fi.Size())
}
