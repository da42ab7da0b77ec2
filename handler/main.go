// Command handler is the Azure Functions custom handler of the SCEPman app registration function app.
// See doc.go for how the pieces fit.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Signals are subscribed to beside the start-up, not before it: setting that up costs a fraction of
	// a millisecond, which the host's readiness probe would wait for.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		stop()
	}()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stdout, `{"level":"ERROR","msg":"handler stopped","err":`+fmt.Sprintf("%q", err.Error())+`}`)
		os.Exit(1)
	}
}
