package licensing

// Roles of a partner's people and their API tokens, named as in Partner
// Center. What each may do is the API's permission table.
const (
	RoleGlobalAdmin         = "global_admin"
	RoleAdminAgent          = "admin_agent"
	RoleUserManagementAdmin = "user_management_admin"
	RoleHelpdeskAgent       = "helpdesk_agent"
	RoleSalesAgent          = "sales_agent"
	RoleReader              = "reader"
)

// Roles lists the valid roles, most powerful first.
func Roles() []string {
	return []string{RoleGlobalAdmin, RoleAdminAgent, RoleUserManagementAdmin, RoleHelpdeskAgent, RoleSalesAgent, RoleReader}
}

// ValidRole reports whether role is one of Roles.
func ValidRole(role string) bool {
	for _, r := range Roles() {
		if r == role {
			return true
		}
	}
	return false
}
