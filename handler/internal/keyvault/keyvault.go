// Package keyvault is the Key Vault adapter: it implements appreg.Vault with the azsecrets client and
// classifies every failure, once, into appreg's sentinels. Secret values pass through it on the way in
// (SetSecret) and, for the sign-in check, out of Secret as an appreg.SecretValue, which never prints,
// logs or marshals; every other value Key Vault sends back is dropped at once.
package keyvault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/azure"
)

// NeedSecretsOfficer is what a 403 from Key Vault means the function's identity lacks.
const NeedSecretsOfficer = "the Key Vault Secrets Officer role on the vault (or, on a vault with access policies, an access policy with the secret permissions get, list, set and recover)"

// Key Vault's inner error codes that decide a classification (error.innererror.code).
const (
	innerDeletedButRecoverable = "ObjectIsDeletedButRecoverable"
	innerBeingRecovered        = "ObjectIsBeingRecovered"
	innerSecretDisabled        = "SecretDisabled"
	innerFirewall              = "ForbiddenByFirewall"
)

// AdviceFirewall is the cause of a 403 ForbiddenByFirewall.
const AdviceFirewall = "the vault's firewall refuses the function app's network address: in the vault's Networking settings " +
	"allow the function app's outbound addresses or its virtual network, or reach the vault through a private endpoint"

// AdviceDisabled is the cause of a 403 SecretDisabled.
const AdviceDisabled = "the secret's current version is disabled, so nobody can read it: provision or rotate stores a new version"

// Vault implements appreg.Vault on one Key Vault.
type Vault struct {
	url    string
	client *azsecrets.Client
}

var _ appreg.Vault = (*Vault)(nil)

// nameRE is what Key Vault accepts as a secret name.
var nameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

func validName(s string) bool { return nameRE.MatchString(s) }

// New returns the adapter for the vault at vaultURL (https://<name>.vault.azure.net/ or a national
// cloud's equivalent). Every request goes through hc; the credential answers Key Vault's challenge.
func New(vaultURL string, cred azcore.TokenCredential, hc *http.Client) (*Vault, error) {
	u, err := normalizeVaultURL(vaultURL)
	if err != nil {
		return nil, err
	}
	if cred == nil {
		return nil, errors.New("key vault: no credential")
	}
	opts := &azsecrets.ClientOptions{}
	if hc != nil {
		opts.Transport = hc
	}
	// azcore's retry defaults: 3 retries of 408/429/500/502/503/504 and transport failures, exponential
	// from 800 ms (at most 60 s), honouring Retry-After; a try times out after 1 minute.
	opts.Retry = policy.RetryOptions{MaxRetries: 3, TryTimeout: time.Minute}
	client, err := azsecrets.NewClient(u, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("key vault %s: %w", u, err)
	}
	return &Vault{url: u, client: client}, nil
}

// URL is the vault's normalized URL, https://host/.
func (v *Vault) URL() string { return v.url }

func normalizeVaultURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("key vault URL %q is not a URL: %v", raw, err)
	}
	switch {
	case u.Scheme != "https":
		return "", fmt.Errorf("key vault URL %q must start with https:// (e.g. https://contoso-kv.vault.azure.net/)", raw)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("key vault URL %q has no host (e.g. https://contoso-kv.vault.azure.net/)", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return "", fmt.Errorf("key vault URL %q must be the vault's root URL only, e.g. https://contoso-kv.vault.azure.net/", raw)
	}
	return "https://" + strings.ToLower(u.Host) + "/", nil
}

func checkName(name string) error {
	if !validName(name) {
		return &appreg.ServiceError{Service: appreg.ServiceKeyVault, Kind: appreg.ErrRejected,
			Message: fmt.Sprintf("invalid secret name %q: it must match ^[0-9a-zA-Z-]{1,127}$", name)}
	}
	return nil
}

// Secret reads the current version of a secret; its value is discarded.
func (v *Vault) Secret(ctx context.Context, name string) (appreg.SecretVersion, error) {
	if err := checkName(name); err != nil {
		return appreg.SecretVersion{}, fmt.Errorf("reading secret %s: %w", name, err)
	}
	resp, err := v.client.GetSecret(ctx, name, "", nil)
	if err != nil {
		return appreg.SecretVersion{}, fmt.Errorf("reading secret %s: %w", name, classify(ctx, err))
	}
	sv := fromBundle(resp.ID, resp.Attributes, resp.ContentType, resp.Tags)
	if resp.Value != nil {
		sv.Value = appreg.NewSecretValue(*resp.Value) // for the sign-in check; it never prints
	}
	resp.Value = nil
	if sv.ID == "" {
		return appreg.SecretVersion{}, fmt.Errorf("reading secret %s: %w", name, emptyAnswer())
	}
	return sv, nil
}

// SecretVersions lists every version of a secret (all pages); empty when the secret does not exist.
func (v *Vault) SecretVersions(ctx context.Context, name string) ([]appreg.SecretVersion, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("listing versions of secret %s: %w", name, err)
	}
	var out []appreg.SecretVersion
	pager := v.client.NewListSecretPropertiesVersionsPager(name, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing versions of secret %s: %w", name, classify(ctx, err))
		}
		for _, p := range page.Value {
			if p == nil {
				continue
			}
			out = append(out, fromBundle(p.ID, p.Attributes, p.ContentType, p.Tags))
		}
	}
	return out, nil
}

// SetSecret stores a new version, which becomes the current one.
func (v *Vault) SetSecret(ctx context.Context, s appreg.NewSecret) (appreg.SecretVersion, error) {
	if err := checkName(s.Name); err != nil {
		return appreg.SecretVersion{}, fmt.Errorf("storing secret %s: %w", s.Name, err)
	}
	enabled := true
	attrs := &azsecrets.SecretAttributes{Enabled: &enabled}
	if !s.Expires.IsZero() {
		exp := s.Expires.UTC()
		attrs.Expires = &exp
	}
	params := azsecrets.SetSecretParameters{Value: &s.Value, SecretAttributes: attrs}
	if s.ContentType != "" {
		params.ContentType = &s.ContentType
	}
	if len(s.Tags) > 0 {
		params.Tags = make(map[string]*string, len(s.Tags))
		for k, val := range s.Tags {
			params.Tags[k] = &val
		}
	}
	resp, err := v.client.SetSecret(ctx, s.Name, params, nil)
	resp.Value = nil // Key Vault echoes the value: drop it
	if err != nil {
		return appreg.SecretVersion{}, fmt.Errorf("storing secret %s: %w", s.Name, classify(ctx, err))
	}
	sv := fromBundle(resp.ID, resp.Attributes, resp.ContentType, resp.Tags)
	if sv.ID == "" {
		return appreg.SecretVersion{}, fmt.Errorf("storing secret %s: %w", s.Name, emptyAnswer())
	}
	return sv, nil
}

// DeletedSecret reads a deleted-but-recoverable secret; ErrNotFound when there is none.
func (v *Vault) DeletedSecret(ctx context.Context, name string) (appreg.DeletedSecret, error) {
	if err := checkName(name); err != nil {
		return appreg.DeletedSecret{}, fmt.Errorf("reading deleted secret %s: %w", name, err)
	}
	resp, err := v.client.GetDeletedSecret(ctx, name, nil)
	resp.Value = nil // the value is never kept
	if err != nil {
		return appreg.DeletedSecret{}, fmt.Errorf("reading deleted secret %s: %w", name, classify(ctx, err))
	}
	sv := fromBundle(resp.ID, resp.Attributes, resp.ContentType, resp.Tags)
	ds := appreg.DeletedSecret{ID: sv.ID, Tags: sv.Tags}
	if resp.RecoveryID != nil {
		ds.RecoveryID = *resp.RecoveryID
	}
	if resp.DeletedDate != nil {
		ds.DeletedOn = resp.DeletedDate.UTC()
	}
	if resp.ScheduledPurgeDate != nil {
		ds.ScheduledPurge = resp.ScheduledPurgeDate.UTC()
	}
	return ds, nil
}

// RecoverDeletedSecret starts the recovery of a deleted secret with all its versions.
func (v *Vault) RecoverDeletedSecret(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("recovering deleted secret %s: %w", name, err)
	}
	resp, err := v.client.RecoverDeletedSecret(ctx, name, nil)
	resp.Value = nil
	if err != nil {
		return fmt.Errorf("recovering deleted secret %s: %w", name, classify(ctx, err))
	}
	return nil
}

func fromBundle(id *azsecrets.ID, attrs *azsecrets.SecretAttributes, contentType *string, tags map[string]*string) appreg.SecretVersion {
	var sv appreg.SecretVersion
	if id != nil {
		sv.ID = string(*id)
		sv.Name = id.Name()
		sv.Version = id.Version()
	}
	if contentType != nil {
		sv.ContentType = *contentType
	}
	if attrs != nil {
		sv.Enabled = attrs.Enabled != nil && *attrs.Enabled
		if attrs.Created != nil {
			sv.Created = attrs.Created.UTC()
		}
		if attrs.Expires != nil {
			sv.Expires = attrs.Expires.UTC()
		}
	}
	if len(tags) > 0 {
		sv.Tags = make(map[string]string, len(tags))
		for k, val := range tags {
			if val != nil {
				sv.Tags[k] = *val
			}
		}
	}
	return sv
}

func emptyAnswer() error {
	return &appreg.ServiceError{Service: appreg.ServiceKeyVault, Kind: appreg.ErrUnavailable,
		Message: "the answer carried no secret bundle"}
}

// classify turns an azsecrets error into a *appreg.ServiceError, once. The end of the caller's context is
// returned as it is.
func classify(ctx context.Context, err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		se := &appreg.ServiceError{Service: appreg.ServiceKeyVault, Status: re.StatusCode, Code: re.ErrorCode}
		var inner string
		se.Message, se.Code, inner = responseMessage(re)
		switch s := re.StatusCode; {
		case s == http.StatusNotFound:
			se.Kind = appreg.ErrNotFound
		case s == http.StatusConflict && inner == innerDeletedButRecoverable:
			se.Kind = appreg.ErrSecretDeleted
		case s == http.StatusConflict && inner == innerBeingRecovered:
			se.Kind = appreg.ErrRecovering
		case s == http.StatusForbidden && inner == innerSecretDisabled:
			se.Kind, se.Advice = appreg.ErrSecretDisabled, AdviceDisabled
		case s == http.StatusForbidden && inner == innerFirewall:
			se.Kind, se.Advice = appreg.ErrForbidden, AdviceFirewall
		case s == http.StatusForbidden:
			se.Kind = appreg.ErrForbidden
			se.Need = NeedSecretsOfficer
		case s == http.StatusTooManyRequests:
			se.Kind = appreg.ErrThrottled
		case s >= 500 || s == http.StatusRequestTimeout:
			se.Kind = appreg.ErrUnavailable
		default:
			se.Kind = appreg.ErrRejected
		}
		return se
	}
	se, ok := azure.ClassifyFailure(ctx, appreg.ServiceKeyVault, err)
	if !ok {
		return err
	}
	return se
}

// responseMessage reads Key Vault's error envelope {"error":{"code","message","innererror":{"code"}}}.
// Only the message and codes are kept: never the raw body. code is "code/innercode" when they differ.
func responseMessage(re *azcore.ResponseError) (msg, code, inner string) {
	code = re.ErrorCode
	if re.RawResponse == nil {
		return "", code, ""
	}
	body, err := runtime.Payload(re.RawResponse)
	if err != nil || len(body) == 0 {
		return "", code, ""
	}
	var env struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError *struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil {
		return "", code, ""
	}
	if code == "" {
		code = env.Error.Code
	}
	if env.Error.InnerError != nil {
		inner = env.Error.InnerError.Code
	}
	if inner != "" && inner != code {
		code += "/" + inner
	}
	return env.Error.Message, code, inner
}
