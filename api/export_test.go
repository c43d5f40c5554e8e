package api

// RouteInfo is an authenticated route of the server's table with the roles
// that may call it, as the server enforces it.
type RouteInfo struct {
	Pattern string
	Roles   []string
}

// RouteTable returns every authenticated route of the server, straight from
// routes(), so that tests cover routes added later without being told.
func RouteTable() []RouteInfo {
	var s Server
	var out []RouteInfo
	for _, rt := range s.routes() {
		out = append(out, RouteInfo{Pattern: rt.pattern, Roles: rolesWith(rt.perm)})
	}
	return out
}
