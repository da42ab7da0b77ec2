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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stdout, `{"level":"ERROR","msg":"handler stopped","err":`+fmt.Sprintf("%q", err.Error())+`}`)
		os.Exit(1)
	}
}
