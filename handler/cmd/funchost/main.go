// Command funchost runs the handler under a small local Azure Functions host (package funchost), on the
// embedded emulated tenant when no APPREG_KEY_VAULT_URL is set: `make run`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/funchost"
)

func main() {
	dir := flag.String("dir", ".", "project directory: host.json, functions/, local.settings.json")
	handler := flag.String("handler", "", "handler executable (default: host.json's defaultExecutablePath, relative to -dir)")
	addr := flag.String("addr", "localhost:7071", "listen address")
	noTimers := flag.Bool("no-timers", false, "do not fire timers on their schedules (POST /admin/functions/<name> still runs them)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h, err := funchost.Start(ctx, funchost.Options{
		Dir: *dir, Handler: *handler, Addr: *addr, DisableTimers: *noTimers,
		NewTenant: func() (funchost.Tenant, error) {
			t, err := emulator.Start(emulator.Options{})
			if err != nil {
				return nil, err
			}
			return t, nil
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "funchost:", err)
		os.Exit(1)
	}
	code := 0
	select {
	case <-ctx.Done():
	case <-h.Done():
		code = 1 // the handler exited on its own; the real host would stop too after repeated failures
	}
	if err := h.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "funchost:", err)
	}
	os.Exit(code)
}
