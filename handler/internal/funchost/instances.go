package funchost

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Settings of several instances (contract, "Several instances").
const (
	envInstances      = "APPREG_INSTANCES"
	envFederatedAppID = "APPREG_FEDERATED_APP_ID"
)

// FederatedAppName is the display name of the multi-tenant application funchost registers in the
// emulated world for the instances in other tenants.
const FederatedAppName = "appreg federation (emulated)"

// FederatedRoles are the Microsoft Graph permissions the emulated administrator of each other tenant
// grants the federated application: the managed identity's three of APPREG_CONSENT=grant.
var FederatedRoles = []string{"Application.ReadWrite.OwnedBy", "Application.Read.All", "AppRoleAssignment.ReadWrite.All"}

// World is what an emulated tenant offers for several tenants; *emulator.Tenant implements it.
type World interface {
	AddTenant(tenantID string, noIntune bool) error
	RegisterFederatedApp(displayName string) (appID string)
	ConsentFederatedApp(tenantID, appID string, roles ...string) error
}

// tenantInstances are the instances of one tenant.
type tenantInstances struct {
	tenantID string // "" for the managed identity's own tenant
	names    []string
}

// instanceTenants groups the instances of APPREG_INSTANCES by tenant, in order of first appearance; an
// instance without tenantId, or with the home tenant's, belongs to home ("" in the result). It reads only
// what funchost needs (name, tenantId, keyVaultUrl, which vaults lists as {name, url}): the handler
// validates the setting.
func instanceTenants(raw, home string) (groups []tenantInstances, vaults [][2]string, err error) {
	var list []struct {
		Name        string `json:"name"`
		TenantID    string `json:"tenantId"`
		KeyVaultURL string `json:"keyVaultUrl"`
	}
	if err := json.Unmarshal([]byte(raw), &list); err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", envInstances, err)
	}
	if len(list) == 0 {
		return nil, nil, errors.New(envInstances + " names no instance")
	}
	index := map[string]int{}
	for _, in := range list {
		tid := strings.TrimSpace(in.TenantID)
		if strings.EqualFold(tid, home) {
			tid = ""
		}
		key := strings.ToLower(tid)
		i, ok := index[key]
		if !ok {
			i = len(groups)
			index[key] = i
			groups = append(groups, tenantInstances{tenantID: tid})
		}
		groups[i].names = append(groups[i].names, in.Name)
		if in.KeyVaultURL != "" {
			vaults = append(vaults, [2]string{in.Name, in.KeyVaultURL})
		}
	}
	return groups, vaults, nil
}

// setUpInstances grows the emulated world for APPREG_INSTANCES: every tenant an instance names besides the
// managed identity's own is added, a federated application is registered (its client id passed to the
// handler as APPREG_FEDERATED_APP_ID) and consented in each with FederatedRoles. It prints one line per
// tenant. A setting that does not parse is left to the handler, which reports it.
func (h *Host) setUpInstances(t Tenant) {
	raw := strings.TrimSpace(h.env.get(envInstances))
	if raw == "" {
		return
	}
	home := t.TenantID()
	groups, vaults, err := instanceTenants(raw, home)
	if err != nil {
		h.logf("%v: the emulated world stays one tenant; the handler reports the setting", err)
		return
	}
	for _, v := range vaults {
		if !strings.EqualFold(strings.TrimRight(v[1], "/"), strings.TrimRight(t.VaultURL(), "/")) {
			h.logf("instance %s names vault %s, which the emulated world does not serve (it serves %s)", v[0], v[1], t.VaultURL())
		}
	}
	for _, g := range groups {
		if g.tenantID == "" {
			h.logf("emulated tenant %s (the managed identity's own): instances %s", home, strings.Join(g.names, ", "))
		}
	}
	var appID string
	for _, g := range groups {
		if g.tenantID == "" {
			continue
		}
		w, ok := t.(World)
		if !ok {
			h.logf("the emulated tenant cannot add tenants: instances %s (tenant %s) will not sign in", strings.Join(g.names, ", "), g.tenantID)
			continue
		}
		if appID == "" {
			appID = w.RegisterFederatedApp(FederatedAppName)
			if old := h.env.get(envFederatedAppID); old != "" && old != appID {
				h.logf("%s=%s replaced by the emulated world's federated application", envFederatedAppID, old)
			}
			h.env.set(envFederatedAppID, appID)
			h.logf("emulated federated application %s (%s=%s): trusts the managed identity of tenant %s", FederatedAppName, envFederatedAppID, appID, home)
		}
		if err := w.AddTenant(g.tenantID, false); err != nil {
			h.logf("emulated tenant %s not added (%v): instances %s will not sign in", g.tenantID, err, strings.Join(g.names, ", "))
			continue
		}
		if err := w.ConsentFederatedApp(g.tenantID, appID, FederatedRoles...); err != nil {
			h.logf("emulated tenant %s: consenting to the federated application failed (%v): instances %s will not sign in", g.tenantID, err, strings.Join(g.names, ", "))
			continue
		}
		h.logf("emulated tenant %s: instances %s; the federated application is consented there (%s)", g.tenantID, strings.Join(g.names, ", "), strings.Join(FederatedRoles, ", "))
	}
}
