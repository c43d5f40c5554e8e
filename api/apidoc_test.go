package api_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/licensing"
)

// docPath is the API reference for people.
var docPath = filepath.Join("..", "docs", "api.md")

// docTableRows returns the cells of the rows of the Markdown table whose
// header row starts with "| header |".
func docTableRows(t *testing.T, doc, header string) [][]string {
	t.Helper()
	start := strings.Index(doc, "\n| "+header+" |")
	if start < 0 {
		t.Fatalf("%s has no table headed %q", docPath, header)
	}
	var rows [][]string
	for i, line := range strings.Split(doc[start+1:], "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		if i == 1 { // the |---| line
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		rows = append(rows, cells)
	}
	return rows
}

var docCode = regexp.MustCompile("^`([a-z]+)`")

// TestAPIReferenceMatchesCode keeps docs/api.md in step with the code: its
// endpoint table lists exactly the routes of the server (and the service
// endpoints), the roles its permission table gives each route are the roles
// the server lets call it, and every error code of package licensing is
// documented.
func TestAPIReferenceMatchesCode(t *testing.T) {
	data, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("read %s: %v", docPath, err)
	}
	doc := string(data)

	// The permission table: permission → roles with a ✓.
	perms := docTableRows(t, doc, "permission")
	header := perms[0][1:]
	if !slices.Equal(header, licensing.Roles()) {
		t.Errorf("%s: the permission table's roles are %v, want licensing.Roles() %v", docPath, header, licensing.Roles())
	}
	rolesOf := map[string][]string{}
	for _, row := range perms[1:] {
		m := docCode.FindStringSubmatch(row[0])
		if m == nil {
			t.Errorf("%s: permission row %q does not start with its `name`", docPath, row[0])
			continue
		}
		var roles []string
		for i, cell := range row[1:] {
			if cell == "✓" && i < len(header) {
				roles = append(roles, header[i])
			}
		}
		rolesOf[m[1]] = roles
	}

	// The endpoint table: every route once, with the roles of its permission.
	documented := map[string]bool{}
	for _, row := range docTableRows(t, doc, "endpoint")[1:] {
		if len(row) < 2 {
			continue
		}
		var routes []string
		for _, m := range regexp.MustCompile("`([A-Z]+ /[^`]*)`").FindAllStringSubmatch(row[0], -1) {
			routes = append(routes, m[1])
		}
		for _, route := range routes {
			if documented[route] {
				t.Errorf("%s: %s is listed twice", docPath, route)
			}
			documented[route] = true
			if oaServiceEndpoints[route] {
				if row[1] != "none (no token)" {
					t.Errorf("%s: service endpoint %s needs %q, want none (no token)", docPath, route, row[1])
				}
				continue
			}
			m := docCode.FindStringSubmatch(row[1])
			if m == nil || rolesOf[m[1]] == nil {
				t.Errorf("%s: %s has permission %q, not one of the permission table", docPath, route, row[1])
				continue
			}
			for _, rt := range api.RouteTable() {
				if rt.Pattern == route && !slices.Equal(rolesOf[m[1]], rt.Roles) {
					t.Errorf("%s: %s gives roles %v, the server lets %v call it", docPath, route, rolesOf[m[1]], rt.Roles)
				}
			}
		}
	}
	for _, rt := range api.RouteTable() {
		if !documented[rt.Pattern] {
			t.Errorf("%s: route %s is not in the endpoint table (add it with its permission)", docPath, rt.Pattern)
		}
		if !strings.Contains(doc, "### `"+rt.Pattern) && !strings.Contains(doc, ", `"+rt.Pattern+"`") {
			t.Errorf("%s: route %s has no section (a ### heading naming it)", docPath, rt.Pattern)
		}
		delete(documented, rt.Pattern)
	}
	for route := range documented {
		if !oaServiceEndpoints[route] {
			t.Errorf("%s: the endpoint table lists %s, which the server does not serve", docPath, route)
		}
	}
	for route := range oaServiceEndpoints {
		if !strings.Contains(doc, "`"+route+"`") {
			t.Errorf("%s: service endpoint %s is not documented", docPath, route)
		}
	}

	all, _ := oaLicensingCodes(t)
	for _, code := range all {
		if !strings.Contains(doc, "`"+code+"`") {
			t.Errorf("%s: error code %s is not documented", docPath, code)
		}
	}
}
