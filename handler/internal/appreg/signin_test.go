package appreg

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretValueNeverPrints(t *testing.T) {
	const value = "Zq8~not-for-anyone-s-eyes"
	v := SecretVersion{ID: "https://kv.vault.azure.net/secrets/s/1", Value: NewSecretValue(value)}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("version", "v", v, "value", v.Value)
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", v), "%+v": fmt.Sprintf("%+v", v), "%#v": fmt.Sprintf("%#v", v),
		"%s": fmt.Sprintf("%s", v.Value), "%q": fmt.Sprintf("%q", v.Value), "%x": fmt.Sprintf("%x", v.Value),
		"json": string(js), "slog": logged.String(), "error": fmt.Errorf("wrapped %v", v.Value).Error(),
	}
	for how, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
			t.Errorf("%s shows the value: %s", how, out)
		}
	}
	if v.Value.Reveal() != value || v.Value.IsZero() || !(SecretValue{}).IsZero() {
		t.Error("Reveal or IsZero is wrong")
	}
	var back SecretValue
	if err := json.Unmarshal([]byte(`"x"`), &back); err == nil {
		t.Error("a secret value was read from JSON")
	}
}
