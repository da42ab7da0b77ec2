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

// run loads the settings, builds the engine, listens on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT (an
// ephemeral port when unset) and serves the custom-handler protocol until ctx ends. Invalid settings do not
// stop it: every response reports them, so that the admin sees them, and nothing is written.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := slog.New(slog.NewJSONHandler(stdout, nil))
	slog.SetDefault(log) // what logctx falls back on, so that no line is lost
	cfg, cfgErr := config.Load(getenv)
	var served []server.Instance
	if cfgErr == nil {
		ins, err := newInstances(cfg, getenv, time.Now)
		if err != nil {
			// A setting the clients could not use (SSL_CERT_FILE, HTTPS_PROXY, ...): as invalid as any other.
			cfgErr = server.ConfigError(err)
		}
		for _, in := range ins {
			served = append(served, server.Instance{Name: in.name, Service: in.engine})
		}
	}
	if cfgErr != nil {
		log.Error("invalid configuration: every invocation will fail until it is fixed", "err", cfgErr.Error())
	}

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", cfg.Port))
	if err != nil {
		return fmt.Errorf("listening on 127.0.0.1:%s (%s): %w", cfg.Port, config.EnvPort, err)
	}
	h := server.New(server.Options{Instances: served, Multi: cfg.InstancesSet, ConfigErr: cfgErr, Logger: log,
		HTTPTimeout: httpTimeout, TimerTimeout: timerTimeout})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String())
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

// instance is one registration the function app keeps right: its name and its engine.
type instance struct {
	name   string
	engine *appreg.Engine
}

// newInstances builds what every instance shares (the one HTTP client, the managed identity, the
// credentials of other tenants, the sign-in adapter, one Key Vault client per vault, one ARM client) and
// one engine per instance, whose clock is now. The engines are built once and reused: each keeps its own
// Graph client (its retries and throttling are its own) and the ids it remembers.
func newInstances(cfg config.Config, getenv func(string) string, now func() time.Time) ([]instance, error) {
	hc, err := azure.NewHTTPClient(getenv)
	if err != nil {
		return nil, err
	}
	mi, err := azure.NewCredential(getenv, hc)
	if err != nil {
		return nil, fmt.Errorf("building the managed identity credential: %w", err)
	}
	fed := azure.NewFederation(mi, cfg.FederatedAppID, cfg.AuthorityHost, cfg.GraphEndpoint+"/.default", hc)
	signer := entra.New(cfg.AuthorityHost, hc)
	refresher := arm.New(cfg.ARMEndpoint, mi, hc)
	vaults := map[string]*keyvault.Vault{}
	var out []instance
	for _, in := range cfg.Instances {
		dir, err := graph.New(fed.Credential(in.TenantID), cfg.GraphEndpoint, hc)
		if err != nil {
			return nil, fmt.Errorf("building the Microsoft Graph client for %s: %w", cfg.GraphEndpoint, err)
		}
		vault, ok := vaults[in.KeyVaultURL]
		if !ok {
			if vault, err = keyvault.New(in.KeyVaultURL, mi, hc); err != nil {
				return nil, fmt.Errorf("building the Key Vault client for %s: %w", in.KeyVaultURL, err)
			}
			vaults[in.KeyVaultURL] = vault
		}
		engine := appreg.NewEngine(dir, vault, appreg.Settings{
			DisplayName:     in.DisplayName,
			UniqueName:      in.UniqueName,
			PermissionLevel: in.PermissionLevel,
			SecretName:      in.SecretName,
			SecretLifetime:  cfg.SecretLifetime,
			RenewBefore:     cfg.RenewBefore,
			Overlap:         cfg.Overlap,
			Remediate:       cfg.Remediate,
			AdminConsent:    in.Consent == config.ConsentAdmin,
			AuthorityHost:   cfg.AuthorityHost,
		}, now)
		engine.SetSignIn(signer)
		if len(in.RefreshSiteIDs) > 0 {
			engine.SetRefresher(refresher, in.RefreshSiteIDs)
		}
		out = append(out, instance{name: in.Name, engine: engine})
	}
	return out, nil
}
