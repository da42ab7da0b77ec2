package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/arm"
	"github.com/scepman-appreg/appreg/handler/internal/azure"
	"github.com/scepman-appreg/appreg/handler/internal/config"
	"github.com/scepman-appreg/appreg/handler/internal/graph"
	"github.com/scepman-appreg/appreg/handler/internal/keyvault"
	"github.com/scepman-appreg/appreg/handler/internal/server"
)

// Deadlines of one invocation. The host cuts an HTTP trigger at 230 s; provision gives up well before.
const (
	httpTimeout  = 120 * time.Second
	timerTimeout = 8 * time.Minute
)

// run loads the settings, listens on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT (an ephemeral port when
// unset) and serves the custom-handler protocol until ctx ends. It answers the host's readiness probe
// (GET /) as soon as it listens; the clients (the system's trusted roots alone take tens of milliseconds
// to load) are built meanwhile, and an invocation that arrives first waits for them. Invalid settings do
// not stop it: every response reports them, so that the admin sees them, and nothing is written.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := slog.New(slog.NewJSONHandler(stdout, nil))
	cfg, cfgErr := config.Load(getenv)
	if cfgErr != nil {
		log.Error("invalid configuration: every invocation will fail until it is fixed", "err", cfgErr.Error())
	}

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", cfg.Port))
	if err != nil {
		return fmt.Errorf("listening on 127.0.0.1:%s (%s): %w", cfg.Port, config.EnvPort, err)
	}
	var (
		svc     server.Service
		pending *pendingEngine
	)
	if cfgErr == nil {
		pending = &pendingEngine{done: make(chan struct{})}
		svc = pending
	}
	srv := &http.Server{
		Handler:           server.New(server.Options{Service: svc, ConfigErr: cfgErr, Logger: log, HTTPTimeout: httpTimeout, TimerTimeout: timerTimeout}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Info("listening", "addr", ln.Addr().String())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	if pending != nil {
		go pending.build(func() (server.Service, error) { return newEngine(cfg, getenv, time.Now) }, log)
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// pendingEngine is the service while its clients are being built: every call waits for the build (or
// for its own context), then runs on the engine, or fails with the build's error as an invalid
// configuration (a setting such as SSL_CERT_FILE or HTTPS_PROXY that the clients could not use).
type pendingEngine struct {
	done chan struct{}
	svc  server.Service
	err  error
}

// build builds the service and releases the calls that wait for it. A failed build is logged as an
// invalid configuration, as run logs invalid settings.
func (p *pendingEngine) build(build func() (server.Service, error), log *slog.Logger) {
	defer close(p.done)
	if p.svc, p.err = build(); p.err != nil {
		p.err = server.ConfigError(p.err)
		log.Error("invalid configuration: every invocation will fail until it is fixed", "err", p.err.Error())
	}
}

func (p *pendingEngine) wait(ctx context.Context) (server.Service, error) {
	select {
	case <-p.done:
		return p.svc, p.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pendingEngine) Provision(ctx context.Context) (appreg.ProvisionResult, error) {
	s, err := p.wait(ctx)
	if err != nil {
		return appreg.ProvisionResult{}, err
	}
	return s.Provision(ctx)
}

func (p *pendingEngine) Status(ctx context.Context) (appreg.StatusReport, error) {
	s, err := p.wait(ctx)
	if err != nil {
		return appreg.StatusReport{}, err
	}
	return s.Status(ctx)
}

func (p *pendingEngine) Compliance(ctx context.Context) (appreg.ComplianceResult, error) {
	s, err := p.wait(ctx)
	if err != nil {
		return appreg.ComplianceResult{}, err
	}
	return s.Compliance(ctx)
}

func (p *pendingEngine) Rotate(ctx context.Context) (appreg.RotateResult, error) {
	s, err := p.wait(ctx)
	if err != nil {
		return appreg.RotateResult{}, err
	}
	return s.Rotate(ctx)
}

// newEngine builds the one HTTP client, the credential, the Graph, Key Vault and ARM adapters and the
// engine, whose clock is now.
func newEngine(cfg config.Config, getenv func(string) string, now func() time.Time) (*appreg.Engine, error) {
	hc, err := azure.NewHTTPClient(getenv)
	if err != nil {
		return nil, err
	}
	cred, err := azure.NewCredential(getenv, hc)
	if err != nil {
		return nil, fmt.Errorf("building the managed identity credential: %w", err)
	}
	dir, err := graph.New(cred, cfg.GraphEndpoint, hc)
	if err != nil {
		return nil, fmt.Errorf("building the Microsoft Graph client for %s: %w", cfg.GraphEndpoint, err)
	}
	vault, err := keyvault.New(cfg.KeyVaultURL, cred, hc)
	if err != nil {
		return nil, fmt.Errorf("building the Key Vault client for %s: %w", cfg.KeyVaultURL, err)
	}
	engine := appreg.NewEngine(dir, vault, appreg.Settings{
		DisplayName:     cfg.DisplayName,
		UniqueName:      cfg.UniqueName,
		PermissionLevel: cfg.PermissionLevel,
		SecretName:      cfg.SecretName,
		SecretLifetime:  cfg.SecretLifetime,
		RenewBefore:     cfg.RenewBefore,
		Overlap:         cfg.Overlap,
		Remediate:       cfg.Remediate,
	}, now)
	if len(cfg.RefreshSiteIDs) > 0 {
		engine.SetRefresher(arm.New(arm.Endpoint, cred, hc), cfg.RefreshSiteIDs)
	}
	return engine, nil
}
