package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// errUnhealthy is returned by `gateway health` when the admin /health did
// not answer 200: the gateway is starting (no routing table yet) or not
// there at all.
var errUnhealthy = errors.New("gateway not healthy")

// maxHealthBody bounds what `gateway health` reads of the answer: the
// reason of a degraded gateway is a line or two.
const maxHealthBody = 64 << 10

// healthFlags are the settings of `gateway health`.
type healthFlags struct {
	admin   string
	timeout time.Duration
}

// newHealthFlagSet declares the health flags; the compose-file test
// parses the healthcheck with it.
func newHealthFlagSet(f *healthFlags, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gateway health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.admin, "admin", "127.0.0.1:8081", "admin listener address of the gateway to ask (as given to the server; an empty host means loopback)")
	fs.DurationVar(&f.timeout, "timeout", 3*time.Second, "bound on the whole request")
	return fs
}

// runHealth is `gateway health`, the container health check for images
// without a shell or curl (distroless): one GET of the admin /health,
// exit 0 on 200 ("ok", or "degraded": still serving its last known
// routes, so not a reason to restart it) and 1 otherwise. The status
// and reason are printed either way.
func runHealth(args []string, stdout, stderr io.Writer) error {
	var hf healthFlags
	fs := newHealthFlagSet(&hf, stderr)
	addr, timeout := &hf.admin, &hf.timeout
	if wantsHelp(args) {
		printHelp(stdout, "health", fs)
		return flag.ErrHelp
	}
	// GATEWAY_ADMIN is the server's own -admin variable: a container
	// that sets it for the server has the health check follow.
	if err := parseArgs(fs, args, os.LookupEnv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("gateway health [-admin ADDR] [-timeout D]: unexpected argument %q", fs.Arg(0))
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		return usageError("-admin %q: %v", *addr, err)
	}
	// The server listening on ":8081" or "0.0.0.0:8081" is reached on
	// loopback from inside its own container.
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, port) + "/health"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", errUnhealthy, err)
	}
	defer resp.Body.Close()
	var body struct{ Status, Reason string }
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxHealthBody))
	if json.Unmarshal(raw, &body) != nil {
		body.Status = resp.Status
	}
	line := body.Status
	if body.Reason != "" {
		line += ": " + body.Reason
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s answered %d: %s", errUnhealthy, url, resp.StatusCode, line)
	}
	fmt.Fprintln(stdout, line)
	return nil
}
