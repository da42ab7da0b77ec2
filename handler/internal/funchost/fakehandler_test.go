package funchost

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/scepman-appreg/appreg/handler/internal/hostproto"
)

// The test binary doubles as a fake custom handler: with FUNCHOST_FAKE_HANDLER=1 TestMain serves the
// handler protocol on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT instead of running the tests.
const (
	envFake     = "FUNCHOST_FAKE_HANDLER"
	envFakeMode = "FUNCHOST_FAKE_MODE" // "exit": exit at once with status 3
)

func TestMain(m *testing.M) {
	if os.Getenv(envFake) == "1" {
		os.Exit(runFakeHandler())
	}
	os.Exit(m.Run())
}

// echoed is what the fake handler tells about a request it received.
type echoed struct {
	Method           string            `json:"method"`
	Path             string            `json:"path"`
	Query            string            `json:"query"`
	Headers          map[string]string `json:"headers"`
	TransferEncoding []string          `json:"transferEncoding"`
	ContentLength    int64             `json:"contentLength"`
	Body             string            `json:"body"`
	Env              map[string]string `json:"env,omitempty"`
}

// hdr is a header the handler received.
func (e echoed) hdr(name string) string { return e.Headers[http.CanonicalHeaderKey(name)] }

func echo(r *http.Request) echoed {
	body, _ := io.ReadAll(r.Body)
	e := echoed{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Headers: map[string]string{},
		TransferEncoding: r.TransferEncoding, ContentLength: r.ContentLength, Body: string(body)}
	for k := range r.Header {
		e.Headers[k] = r.Header.Get(k)
	}
	return e
}

func runFakeHandler() int {
	if os.Getenv(envFakeMode) == "exit" {
		return 3
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		e := echo(r)
		if r.URL.Path == "/api/env" {
			e.Env = map[string]string{}
			for _, k := range []string{"APPREG_KEY_VAULT_URL", "SSL_CERT_FILE", "FROM_LOCAL", "OVERRIDE", "FUNCTIONS_CUSTOMHANDLER_PORT", envFederatedAppID} {
				e.Env[k] = os.Getenv(k)
			}
			if b, err := os.ReadFile(os.Getenv("SSL_CERT_FILE")); err == nil {
				e.Env["CA"] = string(b)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Fake", "yes")
		w.Header().Set("Location", "/elsewhere") // must come back unchanged, not followed
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(e)
	})
	mux.HandleFunc("POST /compliance", func(w http.ResponseWriter, r *http.Request) {
		e := echo(r)
		inv, err := hostproto.DecodeTimer([]byte(e.Body), hostproto.BindingTimer)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(hostproto.NewResponse(map[string]any{"request": e, "invocation": inv}, "fake compliance ran"))
	})
	mux.HandleFunc("POST /rotate", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"error":{"code":"InternalError","message":"rotation failed"}}`)
	})
	srv := &http.Server{Addr: "127.0.0.1:" + os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"), Handler: mux}
	if err := srv.ListenAndServe(); err != nil {
		return 2
	}
	return 0
}
