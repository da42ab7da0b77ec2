package emulator

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
)

// Well-known resource applications.
const (
	GraphAppID     = "00000003-0000-0000-c000-000000000000"
	IntuneAPIAppID = "c161e42e-d4df-4a3d-9b42-e7a3c31f59d4"
)

// graphAppRoles are the application permissions of the seeded Microsoft Graph service principal: the
// contract's permission table and the ones the emulator checks, with their real ids.
var graphAppRoles = []struct{ id, value, name string }{
	{"7ab1d382-f21e-4acd-a863-ba3e13f7da61", "Directory.Read.All", "Read directory data"},
	{"2f51be20-0bb4-4fed-bf7b-db946066c75e", "DeviceManagementManagedDevices.Read.All", "Read Microsoft Intune devices"},
	{"dc377aa6-52d8-4e23-b271-2a7ae04cedf3", "DeviceManagementConfiguration.Read.All", "Read Microsoft Intune device configuration and policies"},
	{"dc5007c0-2d7d-4c42-879c-2dab87571379", "IdentityRiskyUser.Read.All", "Read all identity risky user information"},
	{"9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30", "Application.Read.All", "Read all applications"},
	{"1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9", "Application.ReadWrite.All", "Read and write all applications"},
	{"18a4783c-866b-4cc7-a460-3d5e5662c884", "Application.ReadWrite.OwnedBy", "Manage apps that this app creates or owns"},
	{"06b708a9-e830-4db3-a914-8e69da51d44f", "AppRoleAssignment.ReadWrite.All", "Manage app permission grants and app role assignments"},
	{"19dbc75e-c2e2-444c-a770-ec69d8559fc7", "Directory.ReadWrite.All", "Read and write directory data"},
	{"246dd0d5-5bd0-4def-940b-0421030a5b68", "Policy.Read.All", "Read your organization's policies"},
	{"df021288-bdef-4463-88db-98f22de89214", "User.Read.All", "Read all users' full profiles"},
	{"498476ce-e0fe-48b0-b801-37ba7e2685c6", "Organization.Read.All", "Read organization information"},
}

// IntuneSCEPChallengeRoleID is the scep_challenge_provider app role of the Microsoft Intune API.
const IntuneSCEPChallengeRoleID = "39d724e8-6a34-4930-9a36-364082c35716"

// seed fills the state of a new tenant: the resource service principals and the identity's.
func (t *Tenant) seed(noIntune bool) {
	seedResources(t.state, noIntune)
	t.state.ServicePrincipals = append(t.state.ServicePrincipals, ServicePrincipal{
		ID: t.identityObjectID, AppID: t.identityClientID, DisplayName: "appreg-function",
		ServicePrincipalType: "ManagedIdentity", AccountEnabled: true,
	})
}

// seedResources adds the resource service principals every directory has: Microsoft Graph and, unless
// noIntune, the Microsoft Intune API.
func seedResources(s *State, noIntune bool) {
	graph := ServicePrincipal{
		ID: NewGUID(), AppID: GraphAppID, DisplayName: "Microsoft Graph", ServicePrincipalType: "Application",
		AppOwnerOrganizationID: "f8cdef31-a31e-4b4a-93e4-5f571e91255a", AccountEnabled: true,
		ServicePrincipalNames: []string{GraphAppID, AudienceGraph, AudienceGraph + "/"},
	}
	for _, r := range graphAppRoles {
		graph.AppRoles = append(graph.AppRoles, AppRole{
			ID: r.id, Value: r.value, DisplayName: r.name, Description: "Allows the app to " + r.name + ".",
			AllowedMemberTypes: []string{"Application"}, IsEnabled: true,
		})
	}
	s.ServicePrincipals = append(s.ServicePrincipals, graph)
	if !noIntune {
		s.ServicePrincipals = append(s.ServicePrincipals, ServicePrincipal{
			ID: NewGUID(), AppID: IntuneAPIAppID, DisplayName: "Microsoft Intune API", ServicePrincipalType: "Application",
			AppOwnerOrganizationID: "f8cdef31-a31e-4b4a-93e4-5f571e91255a", AccountEnabled: true,
			ServicePrincipalNames: []string{IntuneAPIAppID, AudienceIntuneAPI},
			AppRoles: []AppRole{{
				ID: IntuneSCEPChallengeRoleID, Value: "scep_challenge_provider", DisplayName: "SCEP Challenge Provider",
				Description: "Allows the app to validate SCEP challenges.", AllowedMemberTypes: []string{"Application"}, IsEnabled: true,
			}},
		})
	}
}

// NewGUID returns a random (version 4) GUID in lower case.
func NewGUID() string {
	var b [16]byte
	mustRead(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newAssignmentID returns an app role assignment id in Graph's form (43 base64url characters).
func newAssignmentID() string {
	var b [32]byte
	mustRead(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// newSecretVersion returns a Key Vault secret version: 32 lowercase hex digits.
func newSecretVersion() string {
	var b [16]byte
	mustRead(b[:])
	return hex.EncodeToString(b[:])
}

const secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.~"

// newSecretText returns a client secret shaped like Entra's: 40 characters with "8Q~" after the hint.
func newSecretText() string {
	var b [37]byte
	mustRead(b[:])
	out := make([]byte, 0, 40)
	for i, c := range b {
		if i == 3 {
			out = append(out, "8Q~"...)
		}
		out = append(out, secretAlphabet[int(c)%len(secretAlphabet)])
	}
	return string(out)
}

func mustRead(b []byte) {
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
}

var (
	guidRE      = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	vaultNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{1,22}[a-z0-9]$`)
)

func isGUID(s string) bool { return guidRE.MatchString(s) }

func validVaultName(s string) bool { return vaultNameRE.MatchString(s) }
