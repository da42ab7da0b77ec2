package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
)

// The tenant's app management policy.

// MaxPasswordLifetime reads the tenant's default app management policy: the shortest maxLifetime of its
// enabled passwordLifetime restrictions on applications, 0 when the policy is disabled or sets none.
// restrictForAppsCreatedAfterDateTime is ignored: applying a restriction that might not apply to our
// application only makes secrets shorter-lived, which is safe.
//
// The body is read raw and parsed here, because kiota's ISO-8601 duration parser does not anchor its
// pattern and requires a fraction on seconds ("PT30S" does not parse).
func (d *Directory) MaxPasswordLifetime(ctx context.Context) (time.Duration, error) {
	o := op{what: "reading the default app management policy", need: NeedPolicyReadAll}
	ri, err := d.client.Policies().DefaultAppManagementPolicy().ToGetRequestInformation(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", o.what, err)
	}
	ctx, a := d.start(ctx)
	raw, err := d.adapter.SendPrimitive(ctx, ri, "[]byte", abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", o.what, d.classify(ctx, o, a, err))
	}
	body, _ := raw.([]byte)
	if len(body) == 0 {
		return 0, fmt.Errorf("%s: %w", o.what, noObject(a))
	}
	max, err := parsePolicy(body)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", o.what, &appreg.ServiceError{Service: appreg.ServiceGraph, Kind: appreg.ErrRejected, Message: err.Error()})
	}
	return max, nil
}

type policyDoc struct {
	IsEnabled               *bool `json:"isEnabled"`
	ApplicationRestrictions *struct {
		PasswordCredentials []struct {
			RestrictionType string  `json:"restrictionType"`
			MaxLifetime     *string `json:"maxLifetime"`
			State           string  `json:"state"`
		} `json:"passwordCredentials"`
	} `json:"applicationRestrictions"`
}

func parsePolicy(body []byte) (time.Duration, error) {
	var doc policyDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return 0, fmt.Errorf("the policy is not JSON: %v", err)
	}
	if doc.IsEnabled != nil && !*doc.IsEnabled || doc.ApplicationRestrictions == nil {
		return 0, nil
	}
	var max time.Duration
	for _, r := range doc.ApplicationRestrictions.PasswordCredentials {
		if !strings.EqualFold(r.RestrictionType, "passwordLifetime") || strings.EqualFold(r.State, "disabled") ||
			r.MaxLifetime == nil || *r.MaxLifetime == "" {
			continue
		}
		d, err := ParseISODuration(*r.MaxLifetime)
		if err != nil {
			return 0, fmt.Errorf("maxLifetime %q: %v", *r.MaxLifetime, err)
		}
		if d > 0 && (max == 0 || d < max) {
			max = d
		}
	}
	return max, nil
}

// ParseISODuration parses an ISO-8601 duration such as P90D, P1Y, P6M, P2W, PT12H or P1DT0.5S. A year
// counts 365 days and a month 30 days (the policy's lifetimes are in days in practice), so the result
// never exceeds the policy's intent by more than a day per month.
func ParseISODuration(s string) (time.Duration, error) {
	orig := s
	if !strings.HasPrefix(s, "P") || len(s) < 3 {
		return 0, fmt.Errorf("not an ISO-8601 duration: %q", orig)
	}
	s = s[1:]
	const day = 24 * time.Hour
	units := map[byte]time.Duration{'Y': 365 * day, 'M': 30 * day, 'W': 7 * day, 'D': day}
	timeUnits := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second}
	var total time.Duration
	inTime := false
	seen := false
	for len(s) > 0 {
		if s[0] == 'T' {
			if inTime || len(s) == 1 {
				return 0, fmt.Errorf("not an ISO-8601 duration: %q", orig)
			}
			inTime = true
			s = s[1:]
			continue
		}
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' || s[i] == ',') {
			i++
		}
		if i == 0 || i == len(s) {
			return 0, fmt.Errorf("not an ISO-8601 duration: %q", orig)
		}
		num := strings.ReplaceAll(s[:i], ",", ".")
		var f float64
		if _, err := fmt.Sscanf(num, "%g", &f); err != nil {
			return 0, fmt.Errorf("not an ISO-8601 duration: %q", orig)
		}
		table := units
		if inTime {
			table = timeUnits
		}
		unit, ok := table[s[i]]
		if !ok {
			return 0, fmt.Errorf("not an ISO-8601 duration: %q", orig)
		}
		total += time.Duration(f * float64(unit))
		seen = true
		s = s[i+1:]
	}
	if !seen {
		return 0, fmt.Errorf("not an ISO-8601 duration: %q", orig)
	}
	return total, nil
}

// ---- conversions ----
