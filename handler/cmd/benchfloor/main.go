// Command benchfloor is the floor of the handler's cold start in `make bench`: the smallest Echo program
// that does what the Functions host waits for at start, answering GET / on
// 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT. It has no other use.
package main

import (
	"net"
	"net/http"
	"os"

	"github.com/labstack/echo/v4"
)

func main() {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT")))
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	e.Listener = ln
	if err := e.Start(""); err != nil && err != http.ErrServerClosed {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
