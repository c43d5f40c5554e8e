package layout

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/licenseops/licenseops/"

// mayImport is the README's table "folder → may import": for each package,
// the packages of this module it may import outside its tests. A package
// missing here fails the test, so a new one is placed in the table on
// purpose. "*" means any (developer tools and test harnesses).
var mayImport = map[string][]string{
	"licensing":           {},
	"jobs":                {"licensing"},
	"storage":             {"licensing", "webhook"},
	"webhook":             {"licensing"},
	"provider":            {"licensing"},
	"provider/msgraph":    {"licensing", "provider"},
	"provider/graphsim":   {"licensing", "provider"},
	"intake":              {"licensing", "jobs", "storage"},
	"api":                 {"licensing", "jobs", "storage", "intake", "internal/health", "internal/ratelimit", "webhook"},
	"console":             {"licensing", "storage", "intake", "internal/ratelimit"},
	"worker":              {"licensing", "jobs", "storage", "provider", "intake", "webhook"},
	"client":              {"licensing"},
	"internal/health":     {"licensing", "internal/redisconf"},
	"internal/redisconf":  {},
	"internal/tenantrate": {},
	"internal/ratelimit":  {},
	"internal/app": {"licensing", "jobs", "storage", "provider", "provider/msgraph", "intake", "api", "console", "worker",
		"internal/health", "internal/tenantrate", "internal/redisconf"},
	"internal/cli":       {"licensing", "client", "storage", "internal/app"},
	"cmd/licenseops":     {"internal/cli"},
	"cmd/licenseops-dev": {"*"},
	"internal/bench":     {"*"},
	"internal/demo":      {"*"},
	"internal/stack":     {"*"},
	"internal/seed":      {"client"},
	"internal/testapp":   {"*"},
	"internal/testenv":   {"internal/localdb"},
	"internal/localdb":   {},
	"internal/layout":    {},
	"dashboards":         {},
	"faults":             {},
}

// devOnly are packages of developer tools and tests that the production
// binary must not link: they start servers, simulate Microsoft Graph or
// measure.
var devOnly = []string{
	"internal/bench", "internal/demo", "internal/stack", "internal/seed", "internal/testapp",
	"internal/testenv", "internal/localdb", "provider/graphsim",
}

func root(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// localImports reads the non-test imports of the package in dir that are
// of this module, relative to it.
func localImports(t *testing.T, dir string) ([]string, bool) {
	t.Helper()
	pkg, err := build.ImportDir(dir, 0)
	if err != nil {
		if _, ok := err.(*build.NoGoError); ok {
			return nil, false
		}
		t.Fatalf("%s: %v", dir, err)
	}
	var out []string
	for _, imp := range pkg.Imports {
		if rel, ok := strings.CutPrefix(imp, module); ok {
			out = append(out, rel)
		}
	}
	return out, true
}

func packages(t *testing.T) map[string][]string {
	t.Helper()
	top := root(t)
	pkgs := map[string][]string{}
	err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		name := d.Name()
		if path != top && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin" || name == "node_modules") {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(top, path)
		if imps, ok := localImports(t, path); ok {
			pkgs[filepath.ToSlash(rel)] = imps
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// Every package imports only what the table lets it; api and worker never
// import each other; the table names every package there is.
func TestImportsFollowTheLayout(t *testing.T) {
	for pkg, imps := range packages(t) {
		allowed, known := mayImport[pkg]
		if !known {
			t.Errorf("package %s is not in the layout table: add it to mayImport and to the README's architecture table", pkg)
			continue
		}
		if slices.Contains(allowed, "*") {
			continue
		}
		for _, imp := range imps {
			if !slices.Contains(allowed, imp) {
				t.Errorf("%s imports %s, which the layout does not let it (allowed: %v)", pkg, imp, allowed)
			}
		}
	}
}

// The production binary links no developer tool or test harness.
func TestProductionBinaryIsLean(t *testing.T) {
	pkgs := packages(t)
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		for _, imp := range pkgs[p] {
			walk(imp)
		}
	}
	walk("cmd/licenseops")
	var linked []string
	for p := range seen {
		linked = append(linked, p)
		if slices.Contains(devOnly, p) {
			t.Errorf("cmd/licenseops links %s, a developer tool or test harness", p)
		}
	}
	sort.Strings(linked)
	t.Logf("cmd/licenseops links %s", strings.Join(linked, ", "))
}
