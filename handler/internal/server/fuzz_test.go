package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzProvisionBody fuzzes the decoder of the forwarded provision request (content type and body). It
// accepts exactly what the contract allows (an empty body, or the JSON object {} sent as
// application/json), and refuses everything else with a 400 whose message is short, valid UTF-8 and says
// what was expected. Seeds: testdata/fuzz/FuzzProvisionBody and the cases below.
func FuzzProvisionBody(f *testing.F) {
	for _, s := range []struct{ ct, body string }{
		{"", ""},
		{"application/json", "{}"},
		{"application/json; charset=utf-8", " { } \n"},
		{"text/plain", "{}"},
		{"", "{}"},
		{"application/json", `{"force":true}`},
		{"application/json", `[]`},
		{"application/json", `{}{}`},
		{"application/json", `{`},
		{"application/json", `null`},
		{"APPLICATION/JSON", "{}"},
		{"application/json", "{\"\xff\":1}"},
		{"application/json;", "{}"},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		err := CheckProvisionBody(ct, body)
		if want := acceptable(ct, body); (err == nil) != want {
			t.Fatalf("CheckProvisionBody(%q, %q) = %v, want accepted %v", ct, body, err, want)
		}
		if err == nil {
			return
		}
		var ae *apiError
		if !errors.As(err, &ae) {
			t.Fatalf("error %T %v is not an *apiError", err, err)
		}
		if ae.Status != 400 || (ae.Code != CodeBadRequest && ae.Code != CodeInvalidContentType) {
			t.Fatalf("error %+v, want 400 BadRequest or InvalidContentType", ae)
		}
		if !strings.Contains(ae.Message, "expected") || len(ae.Message) > 400 || !utf8.ValidString(ae.Message) {
			t.Fatalf("message %q: want a short, valid UTF-8 message that says what was expected", ae.Message)
		}
	})
}

// acceptable is the contract, written independently of the decoder.
func acceptable(ct string, body []byte) bool {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !strings.EqualFold(mt, "application/json") || !json.Valid(body) {
		return false
	}
	var buf bytes.Buffer
	return json.Compact(&buf, body) == nil && buf.String() == "{}"
}
