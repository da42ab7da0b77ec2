package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"time"
)

// coldStarts measures exec to the first answer on GET /, of the handler and of the floor program, started
// alternately. The row is information only (issue 13): the Functions host probes every 25 ms and a cold
// start on Azure takes seconds, so the figure that matters is the first real call (startupRow).
func coldStarts(o options) (row, error) {
	// The handler starts with a valid configuration, as in production: it builds every client before it
	// listens. The tenant is only needed for the settings; nothing is sent at start.
	_, env, cleanup, err := newTenant(o)
	if err != nil {
		return row{}, err
	}
	defer cleanup()
	var floor, handler []time.Duration
	for i := range o.starts + 1 {
		f, err := coldStart(o.floor, env)
		if err != nil {
			return row{}, fmt.Errorf("cold start of the floor program: %w", err)
		}
		h, err := coldStart(o.handler, env)
		if err != nil {
			return row{}, fmt.Errorf("cold start of the handler: %w", err)
		}
		if i == 0 {
			continue // the first start of each pays for the page cache
		}
		floor, handler = append(floor, f), append(handler, h)
	}
	mf, mh := median(floor), median(handler)
	return row{
		figure:   fmt.Sprintf("start-up, information: exec to first answer on GET / (median of %d)", o.starts),
		measured: fmt.Sprintf("%s (min %s; %.2f × floor)", ms(mh), ms(slices.Min(handler)), float64(mh)/float64(mf)),
		floor:    fmt.Sprintf("%s (min %s), Echo answering GET /", ms(mf), ms(slices.Min(floor))),
		target:   "— (information only)",
		verdict:  "—",
	}, nil
}

// coldStart execs bin and measures the time to its first answer on GET /.
func coldStart(bin string, env []string) (time.Duration, error) {
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin)
	cmd.Env = append(slices.Clone(env), "FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port))
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", bin, err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait() // killed: the exit status says so
	}()
	for time.Since(start) < 30*time.Second {
		if ok := probe(addr); ok {
			return time.Since(start), nil
		}
		time.Sleep(100 * time.Microsecond)
	}
	return 0, fmt.Errorf("%s did not answer GET / within 30 s", bin)
}

// probe sends GET / on a new connection and tells whether any HTTP answer came (the host's rule).
func probe(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return false
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+addr+"\r\nConnection: close\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
