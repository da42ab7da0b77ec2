package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/arm"
	"github.com/scepman-appreg/appreg/handler/internal/azure"
	"github.com/scepman-appreg/appreg/handler/internal/config"
	"github.com/scepman-appreg/appreg/handler/internal/entra"
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
// unset) and serves the custom-handler protocol until ctx ends. Invalid settings do not stop it: every
// response reports them, so that the admin sees them, and nothing is written.
//
// It answers the host's readiness probe (GET /) as soon as it listens. The clients are built meanwhile
// (the system's trusted roots alone take milliseconds of CPU to load); so that they do not compete with
// the first answer, their build starts once the first request has been answered, or readinessGrace after
// listening, whichever comes first, well inside the 25 ms between the host's probes. An invocation that
// arrives first starts the build at once and waits for it.
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
		pending = newPendingEngine(func() (server.Service, error) { return newEngine(cfg, getenv, time.Now) }, log)
		svc = pending
	}
	var h http.Handler = server.New(server.Options{Service: svc, ConfigErr: cfgErr, Logger: log, HTTPTimeout: httpTimeout, TimerTimeout: timerTimeout})
	if pending != nil {
		app := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			app.ServeHTTP(w, r)
			pending.begin()
		})
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String())
	if pending != nil {
		grace := time.AfterFunc(readinessGrace, pending.begin)
		defer grace.Stop()
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

// readinessGrace is how long after listening the clients' build waits for the first request to be
// answered before it starts anyway.
const readinessGrace = 5 * time.Millisecond

// pendingEngine is the service while its clients are being built: every call starts the build if it has
// not started, waits for it (or for its own context), then runs on the engine, or fails with the build's
// error as an invalid configuration (a setting such as SSL_CERT_FILE or HTTPS_PROXY that the clients
// could not use).
type pendingEngine struct {
	build func() (server.Service, error)
	log   *slog.Logger
	start sync.Once
	done  chan struct{}
	svc   server.Service
	err   error
}

func newPendingEngine(build func() (server.Service, error), log *slog.Logger) *pendingEngine {
	return &pendingEngine{build: build, log: log, done: make(chan struct{})}
}

// begin starts the build in the background, once. A failed build is logged as an invalid configuration,
// as run logs invalid settings.
func (p *pendingEngine) begin() {
	p.start.Do(func() {
		go func() {
			defer close(p.done)
			if p.svc, p.err = p.build(); p.err != nil {
				p.err = server.ConfigError(p.err)
				p.log.Error("invalid configuration: every invocation will fail until it is fixed", "err", p.err.Error())
			}
		}()
	})
}

func (p *pendingEngine) wait(ctx context.Context) (server.Service, error) {
	p.begin()
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
		AdminConsent:    cfg.Consent == config.ConsentAdmin,
		AuthorityHost:   cfg.AuthorityHost,
	}, now)
	engine.SetSignIn(entra.New(cfg.AuthorityHost, hc))
	if len(cfg.RefreshSiteIDs) > 0 {
		engine.SetRefresher(arm.New(cfg.ARMEndpoint, cred, hc), cfg.RefreshSiteIDs)
	}
	return engine, nil
}
