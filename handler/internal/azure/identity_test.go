package azure_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/azure"
	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

// noSuchIdentity is App Service's message for a client id the app has no identity for.
const noSuchIdentity = "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId."

// identityHeaderValue is the IDENTITY_HEADER of these tests: it must never appear in an error.
const identityHeaderValue = "identity-header-value-0123456789abcdef"

// managedIdentityError gets a token from a managed identity endpoint at endpoint (App Service protocol)
// with the real azidentity credential, without azcore's retries (the classification is the point here),
// and returns its error. A fresh client id keeps MSAL's process-wide cache out of the way.
func managedIdentityError(t *testing.T, ctx context.Context, endpoint string) error {
	t.Helper()
	t.Setenv("IDENTITY_ENDPOINT", endpoint)
	t.Setenv("IDENTITY_HEADER", identityHeaderValue)
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: azcore.ClientOptions{Transport: &http.Client{}, Retry: policy.RetryOptions{MaxRetries: -1}},
		ID:            azidentity.ClientID(emulator.NewGUID()),
	})
	if err != nil {
		t.Fatalf("NewManagedIdentityCredential: %v", err)
	}
	_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}})
	if err == nil {
		t.Fatal("GetToken succeeded, want a failure")
	}
	return err
}

// identityEndpoint serves one answer to every token request.
func identityEndpoint(t *testing.T, status int, contentType, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/msi/token"
}

// closedEndpoint is a loopback URL nothing listens on.
func closedEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/msi/token"
}

// TestClassifyManagedIdentityFailure: every failure of the managed identity credential is the identity's,
// with the endpoint's status and its own message; refusals and an unreachable endpoint are ErrIdentity
// (not transient, with advice), 429 and 5xx stay retryable.
func TestClassifyManagedIdentityFailure(t *testing.T) {
	const appService = "application/json; charset=utf-8"
	tests := []struct {
		name       string
		endpoint   func(t *testing.T) string
		wantKind   error
		wantStatus int
		wantMsg    []string // phrases of the error text
		wantAdvice string   // a phrase of the advice; "" for none
	}{
		{name: "App Service: no such user-assigned identity",
			endpoint: func(t *testing.T) string {
				return identityEndpoint(t, 400, appService, `{"statusCode":400,"message":"`+noSuchIdentity+`","correlationId":"4b4f9f1c-7b83-4f47-9d6a-2a1de3c1c8a0"}`)
			},
			wantKind: appreg.ErrIdentity, wantStatus: 400, wantMsg: []string{"managed identity answered 400", noSuchIdentity},
			wantAdvice: "AZURE_CLIENT_ID"},
		{name: "App Service: identity header refused",
			endpoint: func(t *testing.T) string {
				return identityEndpoint(t, 401, appService, `{"statusCode":401,"message":"The X-IDENTITY-HEADER header is invalid.","correlationId":"x"}`)
			},
			wantKind: appreg.ErrIdentity, wantStatus: 401, wantMsg: []string{"The X-IDENTITY-HEADER header is invalid."}, wantAdvice: "system-assigned"},
		{name: "IMDS-style error_description",
			endpoint: func(t *testing.T) string {
				return identityEndpoint(t, 400, "application/json", `{"error":"invalid_request","error_description":"Identity not found"}`)
			},
			wantKind: appreg.ErrIdentity, wantStatus: 400, wantMsg: []string{"Identity not found"}, wantAdvice: "AZURE_CLIENT_ID"},
		{name: "error envelope",
			endpoint: func(t *testing.T) string {
				return identityEndpoint(t, 403, "application/json", `{"error":{"code":"Forbidden","message":"The identity is disabled."}}`)
			},
			wantKind: appreg.ErrIdentity, wantStatus: 403, wantMsg: []string{"The identity is disabled."}, wantAdvice: "AZURE_CLIENT_ID"},
		{name: "a body that echoes the identity header",
			endpoint: func(t *testing.T) string {
				return identityEndpoint(t, 400, appService, `{"statusCode":400,"message":"bad header `+identityHeaderValue+`"}`)
			},
			wantKind: appreg.ErrIdentity, wantStatus: 400, wantMsg: []string{"bad header [IDENTITY_HEADER]"}, wantAdvice: "AZURE_CLIENT_ID"},
		{name: "not JSON",
			endpoint: func(t *testing.T) string { return identityEndpoint(t, 400, "text/html", "<html>Bad Request</html>") },
			wantKind: appreg.ErrIdentity, wantStatus: 400, wantMsg: []string{"answered 400"}, wantAdvice: "AZURE_CLIENT_ID"},
		{name: "throttled",
			endpoint: func(t *testing.T) string {
				return identityEndpoint(t, 429, appService, `{"statusCode":429,"message":"Too many requests"}`)
			},
			wantKind: appreg.ErrThrottled, wantStatus: 429, wantMsg: []string{"Too many requests"}},
		{name: "unavailable",
			endpoint: func(t *testing.T) string {
				return identityEndpoint(t, 503, appService, `{"statusCode":503,"message":"Service Unavailable"}`)
			},
			wantKind: appreg.ErrUnavailable, wantStatus: 503, wantMsg: []string{"answered 503", "Service Unavailable"}},
		{name: "unreachable",
			endpoint: closedEndpoint,
			wantKind: appreg.ErrIdentity, wantMsg: []string{"managed identity endpoint (IDENTITY_ENDPOINT) could not be reached", "connection refused"},
			wantAdvice: "IDENTITY_ENDPOINT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := managedIdentityError(t, ctx, tt.endpoint(t))
			se, ok := azure.ClassifyFailure(ctx, appreg.ServiceGraph, err)
			if !ok {
				t.Fatalf("ClassifyFailure(%v) left it to the caller", err)
			}
			if se.Service != appreg.ServiceIdentity || se.Kind != tt.wantKind || se.Status != tt.wantStatus {
				t.Errorf("classified as (%q, %v, %d), want (%q, %v, %d)", se.Service, se.Kind, se.Status, appreg.ServiceIdentity, tt.wantKind, tt.wantStatus)
			}
			msg := se.Error()
			t.Logf("classified: %s", msg)
			for _, want := range tt.wantMsg {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			if tt.wantAdvice == "" && se.Advice != "" || !strings.Contains(se.Advice, tt.wantAdvice) {
				t.Errorf("advice %q, want one saying %q", se.Advice, tt.wantAdvice)
			}
			if got, want := appreg.IsTransient(se), tt.wantKind != appreg.ErrIdentity; got != want {
				t.Errorf("IsTransient = %v, want %v", got, want)
			}
			if errors.Is(se, appreg.ErrIdentity) != (tt.wantKind == appreg.ErrIdentity) {
				t.Errorf("errors.Is(ErrIdentity) wrong for %v", se)
			}
			for _, leak := range []string{identityHeaderValue, "correlationId", "access_token", "http://127.0.0.1"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q shows %q", msg, leak)
				}
			}
		})
	}
}

// TestClassifyManagedIdentityOwnContextEnded: an identity endpoint not reached because the caller's own
// context ended is the caller's, not a failure of the identity.
func TestClassifyManagedIdentityOwnContextEnded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := managedIdentityError(t, ctx, closedEndpoint(t))
	if se, ok := azure.ClassifyFailure(ctx, appreg.ServiceGraph, err); ok {
		t.Errorf("ClassifyFailure classified %v as %v, want it left to the caller", err, se)
	}
}
