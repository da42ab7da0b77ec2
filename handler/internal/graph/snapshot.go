package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	abs "github.com/microsoft/kiota-abstractions-go"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	"github.com/microsoftgraph/msgraph-sdk-go/applicationswithuniquename"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"github.com/microsoftgraph/msgraph-sdk-go/serviceprincipals"
	"github.com/microsoftgraph/msgraph-sdk-go/serviceprincipalswithappid"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
)

// maxBatch is Graph's limit of requests in one JSON batch.
const maxBatch = 20

// snapshotRead is one read of a snapshot: alone, it is sent as the adapter's other calls are; together
// with others, it is an item of one JSON batch.
type snapshotRead struct {
	id       string
	op       op
	absentOK bool // a 404 means that the object does not exist: the result stays nil
	request  func(ctx context.Context) (*abs.RequestInformation, error)
	alone    func(ctx context.Context) error // the read sent on its own
	parse    func(ctx context.Context, body []byte) error
}

// Snapshot reads the application, the service principal of q.AppID, the assignments granted to q.SPID and
// the resource service principals in one round trip: a JSON batch ($batch) when there is more than one
// read. Each item of the batch is classified on its own, as the same read sent alone would be; a paged
// list of assignments follows its further pages with plain requests.
func (d *Directory) Snapshot(ctx context.Context, q appreg.SnapshotQuery) (appreg.Snapshot, error) {
	var snap appreg.Snapshot
	var reads []snapshotRead
	if q.UniqueName != "" {
		name := q.UniqueName
		key := quoteKey(name)
		builder := d.client.ApplicationsWithUniqueName(&key)
		cfg := &applicationswithuniquename.ApplicationsWithUniqueNameRequestBuilderGetRequestConfiguration{
			QueryParameters: &applicationswithuniquename.ApplicationsWithUniqueNameRequestBuilderGetQueryParameters{Select: appSelect},
		}
		reads = append(reads, snapshotRead{
			id: "application", op: op{what: fmt.Sprintf("reading application %s", name), need: NeedApplicationOwnedBy}, absentOK: true,
			request: func(ctx context.Context) (*abs.RequestInformation, error) {
				return builder.ToGetRequestInformation(ctx, cfg)
			},
			alone: func(ctx context.Context) error {
				app, err := d.Application(ctx, name)
				if err == nil {
					snap.App = &app
				}
				return err
			},
			parse: func(_ context.Context, body []byte) error {
				m, err := parseObject(body, models.CreateApplicationFromDiscriminatorValue)
				if err != nil {
					return err
				}
				app := fromApplication(m.(models.Applicationable))
				snap.App = &app
				return nil
			},
		})
	}
	spRead := func(id, appID string, set func(*appreg.ServicePrincipal)) snapshotRead {
		key := quoteKey(appID)
		builder := d.client.ServicePrincipalsWithAppId(&key)
		cfg := &serviceprincipalswithappid.ServicePrincipalsWithAppIdRequestBuilderGetRequestConfiguration{
			QueryParameters: &serviceprincipalswithappid.ServicePrincipalsWithAppIdRequestBuilderGetQueryParameters{Select: spSelect},
		}
		return snapshotRead{
			id: id, op: op{what: fmt.Sprintf("reading the service principal of %s", appID), need: NeedApplicationReadAll}, absentOK: true,
			request: func(ctx context.Context) (*abs.RequestInformation, error) {
				return builder.ToGetRequestInformation(ctx, cfg)
			},
			alone: func(ctx context.Context) error {
				sp, err := d.ServicePrincipal(ctx, appID)
				if err == nil {
					set(&sp)
				}
				return err
			},
			parse: func(_ context.Context, body []byte) error {
				m, err := parseObject(body, models.CreateServicePrincipalFromDiscriminatorValue)
				if err != nil {
					return err
				}
				sp := fromServicePrincipal(m.(models.ServicePrincipalable))
				set(&sp)
				return nil
			},
		}
	}
	if q.AppID != "" {
		reads = append(reads, spRead("servicePrincipal", q.AppID, func(sp *appreg.ServicePrincipal) { snap.SP = sp }))
	}
	if q.SPID != "" {
		spID := q.SPID
		o := op{what: fmt.Sprintf("listing the app role assignments of service principal %s", spID), need: NeedApplicationReadAll}
		builder := d.client.ServicePrincipals().ByServicePrincipalId(spID).AppRoleAssignments()
		cfg := &serviceprincipals.ItemAppRoleAssignmentsRequestBuilderGetRequestConfiguration{
			QueryParameters: &serviceprincipals.ItemAppRoleAssignmentsRequestBuilderGetQueryParameters{Select: assignmentSelect},
		}
		reads = append(reads, snapshotRead{
			id: "appRoleAssignments", op: o,
			request: func(ctx context.Context) (*abs.RequestInformation, error) {
				return builder.ToGetRequestInformation(ctx, cfg)
			},
			alone: func(ctx context.Context) (err error) {
				snap.Assigned, err = d.AppRoleAssignments(ctx, spID)
				return err
			},
			parse: func(ctx context.Context, body []byte) error {
				m, err := parseObject(body, models.CreateAppRoleAssignmentCollectionResponseFromDiscriminatorValue)
				if err != nil {
					return err
				}
				page := m.(models.AppRoleAssignmentCollectionResponseable)
				for _, v := range page.GetValue() {
					if v != nil {
						snap.Assigned = append(snap.Assigned, fromAssignment(v))
					}
				}
				if next := page.GetOdataNextLink(); next != nil && *next != "" {
					// The next link carries the query of the first request; no configuration is added to it.
					rest, err := d.assignmentPages(ctx, o, builder.WithUrl(*next), nil, 1)
					if err != nil {
						return err
					}
					snap.Assigned = append(snap.Assigned, rest...)
				}
				return nil
			},
		})
	}
	if len(q.Resources) > 0 {
		snap.Resources = make(map[string]*appreg.ServicePrincipal, len(q.Resources))
	}
	for i, appID := range q.Resources {
		snap.Resources[appID] = nil
		reads = append(reads, spRead("resource"+strconv.Itoa(i), appID, func(sp *appreg.ServicePrincipal) { snap.Resources[appID] = sp }))
	}

	switch {
	case len(reads) == 0:
		return snap, nil
	case len(reads) == 1:
		r := reads[0]
		if err := r.alone(ctx); err != nil && !(r.absentOK && errors.Is(err, appreg.ErrNotFound)) {
			return appreg.Snapshot{}, err
		}
		return snap, nil
	case len(reads) > maxBatch:
		return appreg.Snapshot{}, fmt.Errorf("reading %d objects in one batch: %w", len(reads), rejected(fmt.Sprintf("a batch holds at most %d requests", maxBatch)))
	}
	if err := d.batch(ctx, reads); err != nil {
		return appreg.Snapshot{}, err
	}
	return snap, nil
}

// batchItem is one request of a JSON batch.
type batchItem struct {
	ID     string `json:"id"`
	Method string `json:"method"`
	URL    string `json:"url"`
}

// batchAnswer is the answer of a JSON batch.
type batchAnswer struct {
	Responses []struct {
		ID      string            `json:"id"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	} `json:"responses"`
}

// batch sends the reads as one JSON batch through the adapter (its middleware chain, token and retries
// apply to the batch as to any call), then classifies and parses every item's answer. The first failed
// read, in the order given, is the error.
func (d *Directory) batch(ctx context.Context, reads []snapshotRead) error {
	whats := make([]string, len(reads))
	for i, r := range reads {
		whats[i] = r.op.what
	}
	o := op{what: "in one batch: " + strings.Join(whats, "; ")}
	base := d.adapter.GetBaseUrl()
	items := make([]batchItem, len(reads))
	for i, r := range reads {
		ri, err := r.request(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", r.op.what, err)
		}
		u, err := ri.GetUri()
		if err != nil {
			return fmt.Errorf("%s: %w", r.op.what, err)
		}
		rel, ok := strings.CutPrefix(u.String(), base)
		if !ok {
			return fmt.Errorf("%s: %w", r.op.what, rejected(fmt.Sprintf("request URL %s is not under %s", u, base)))
		}
		items[i] = batchItem{ID: r.id, Method: http.MethodGet, URL: rel}
	}
	body, err := json.Marshal(map[string]any{"requests": items})
	if err != nil {
		return fmt.Errorf("%s: %w", o.what, err)
	}
	ri := abs.NewRequestInformationWithMethodAndUrlTemplateAndPathParameters(abs.POST, "{+baseurl}/$batch", map[string]string{"baseurl": base})
	ri.SetStreamContentAndContentType(body, "application/json")
	ri.Headers.TryAdd("Accept", "application/json")

	bctx, a := d.start(ctx)
	raw, err := d.adapter.SendPrimitive(bctx, ri, "[]byte", abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue})
	if err != nil {
		return fmt.Errorf("%s: %w", o.what, d.classify(bctx, o, a, err))
	}
	b, _ := raw.([]byte)
	var ans batchAnswer
	if len(b) == 0 {
		return fmt.Errorf("%s: %w", o.what, noObject(a))
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return fmt.Errorf("%s: %w", o.what, badAnswer("the batch answer is not JSON: "+err.Error()))
	}
	byID := make(map[string]int, len(ans.Responses))
	for i, r := range ans.Responses {
		byID[r.ID] = i
	}
	for _, r := range reads {
		i, ok := byID[r.id]
		if !ok {
			return fmt.Errorf("%s: %w", r.op.what, badAnswer("the batch answer has no response "+strconv.Quote(r.id)))
		}
		it := ans.Responses[i]
		if it.Status >= 400 {
			err := d.itemError(bctx, r.op, it.Status, it.Headers, it.Body)
			if r.absentOK && errors.Is(err, appreg.ErrNotFound) {
				continue
			}
			return fmt.Errorf("%s: %w", r.op.what, err)
		}
		// A JSON body is inlined as JSON; any other is a base64 string. Only an object is an answer here.
		if body := bytes.TrimSpace(it.Body); len(body) == 0 || body[0] != '{' {
			return fmt.Errorf("%s: %w", r.op.what, badAnswer(fmt.Sprintf("batch response %q (status %d, content type %q) carried no JSON object",
				r.id, it.Status, header(it.Headers, "Content-Type"))))
		}
		if err := r.parse(ctx, it.Body); err != nil {
			return fmt.Errorf("%s: %w", r.op.what, err)
		}
	}
	return nil
}

// header reads a batch item's header, whatever its case.
func header(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// parseObject parses a JSON object with kiota's parse node, as the SDK parses a response body.
func parseObject(body []byte, f absser.ParsableFactory) (absser.Parsable, error) {
	node, err := absser.DefaultParseNodeFactoryInstance.GetRootParseNode("application/json", body)
	if err != nil {
		return nil, badAnswer("parsing a batch response: " + err.Error())
	}
	m, err := node.GetObjectValue(f)
	if err != nil {
		return nil, badAnswer("parsing a batch response: " + err.Error())
	}
	if m == nil {
		return nil, badAnswer("a batch response carried no object")
	}
	return m, nil
}

// badAnswer is an answer that does not have the shape Graph gives it: like an answer without an object,
// worth another try.
func badAnswer(msg string) error {
	return &appreg.ServiceError{Service: appreg.ServiceGraph, Kind: appreg.ErrUnavailable, Message: msg}
}
