package appreg

// Permission is one application permission of the contract's permission-level table.
type Permission struct {
	Level         int    // the lowest level that includes it
	ResourceAppID string // the resource's appId
	Resource      string // the resource's name, for messages
	Value         string // the app role's value
	ID            string // the app role's id
}

// table is the contract's permission-level table, in its order.
var table = []Permission{
	{0, GraphAppID, "Microsoft Graph", "Directory.Read.All", "7ab1d382-f21e-4acd-a863-ba3e13f7da61"},
	{0, IntuneAPIAppID, "Microsoft Intune API", "scep_challenge_provider", "39d724e8-6a34-4930-9a36-364082c35716"},
	{1, GraphAppID, "Microsoft Graph", "DeviceManagementManagedDevices.Read.All", "2f51be20-0bb4-4fed-bf7b-db946066c75e"},
	{1, GraphAppID, "Microsoft Graph", "DeviceManagementConfiguration.Read.All", "dc377aa6-52d8-4e23-b271-2a7ae04cedf3"},
	{2, GraphAppID, "Microsoft Graph", "IdentityRiskyUser.Read.All", "dc5007c0-2d7d-4c42-879c-2dab87571379"},
}

// maxLevel is the highest permission level of the table.
const maxLevel = 2

// PermissionsFor is the permission set of a level: its own permissions and those of every level below.
func PermissionsFor(level int) []Permission {
	var ps []Permission
	for _, p := range table {
		if p.Level <= level {
			ps = append(ps, p)
		}
	}
	return ps
}

// Resources are the distinct resource appIds of a permission set, in table order.
func Resources(ps []Permission) []string {
	var ids []string
	seen := map[string]bool{}
	for _, p := range ps {
		if !seen[p.ResourceAppID] {
			seen[p.ResourceAppID] = true
			ids = append(ids, p.ResourceAppID)
		}
	}
	return ids
}

// RequiredResourceAccess is the requiredResourceAccess of a permission set: one entry per resource, in
// table order, every permission an application permission.
func RequiredResourceAccess(ps []Permission) []ResourceAccess {
	var rra []ResourceAccess
	for _, res := range Resources(ps) {
		ra := ResourceAccess{ResourceAppID: res}
		for _, p := range ps {
			if p.ResourceAppID == res {
				ra.Access = append(ra.Access, Access{ID: p.ID, Type: AccessRole})
			}
		}
		rra = append(rra, ra)
	}
	return rra
}

// knownPermission names a permission id for messages: the table's, or User.Read.
func knownPermission(resourceAppID, id string) string {
	if resourceAppID == GraphAppID && id == UserReadID {
		return "Microsoft Graph User.Read (delegated)"
	}
	for _, p := range table {
		if p.ResourceAppID == resourceAppID && p.ID == id {
			return p.Resource + " " + p.Value
		}
	}
	return "permission " + id + " of resource " + resourceAppID
}
