package api_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/licensing"
)

// The tests of this file keep api/openapi.yaml in step with the code: the
// route table of server.go, the roles that may call each route, and the error
// codes of package licensing. They need neither Postgres nor Redis.

const oaPath = "openapi.yaml"

// oaServiceEndpoints are served outside the route table, without a token.
var oaServiceEndpoints = map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true}

var oaMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type oaParameter struct {
	Ref      string `yaml:"$ref"`
	Name     string `yaml:"name"`
	In       string `yaml:"in"`
	Required bool   `yaml:"required"`
}

type oaMediaType struct {
	Schema struct {
		Ref string `yaml:"$ref"`
	} `yaml:"schema"`
	Example any `yaml:"example"`
}

type oaResponse struct {
	Ref     string                 `yaml:"$ref"`
	Headers map[string]yaml.Node   `yaml:"headers"`
	Content map[string]oaMediaType `yaml:"content"`
}

type oaOperation struct {
	OperationID string                 `yaml:"operationId"`
	Parameters  []oaParameter          `yaml:"parameters"`
	Responses   map[string]oaResponse  `yaml:"responses"`
	Roles       []string               `yaml:"x-roles"`
	Security    *[]map[string][]string `yaml:"security"`
}

type oaDocument struct {
	OpenAPI  string                          `yaml:"openapi"`
	Security []map[string][]string           `yaml:"security"`
	Paths    map[string]map[string]yaml.Node `yaml:"paths"`
	Info     struct {
		Title   string `yaml:"title"`
		Version string `yaml:"version"`
	} `yaml:"info"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type   string `yaml:"type"`
			Scheme string `yaml:"scheme"`
		} `yaml:"securitySchemes"`
		Parameters map[string]oaParameter `yaml:"parameters"`
		Responses  map[string]oaResponse  `yaml:"responses"`
		Schemas    map[string]yaml.Node   `yaml:"schemas"`
	} `yaml:"components"`
}

// oaRoute is one operation of the document under its route-table key
// ("METHOD /path"), with the path item's parameters merged in.
type oaRoute struct {
	oaOperation
	params []oaParameter // resolved, path item's first
}

type oaSpec struct {
	doc    oaDocument
	root   yaml.Node
	routes map[string]oaRoute
}

func loadOpenAPI(t *testing.T) *oaSpec {
	t.Helper()
	data, err := os.ReadFile(oaPath)
	if err != nil {
		t.Fatalf("read %s: %v", oaPath, err)
	}
	o := &oaSpec{routes: map[string]oaRoute{}}
	if err := yaml.Unmarshal(data, &o.root); err != nil {
		t.Fatalf("parse %s: %v", oaPath, err)
	}
	if err := o.root.Decode(&o.doc); err != nil {
		t.Fatalf("decode %s: %v", oaPath, err)
	}
	for path, item := range o.doc.Paths {
		var shared []oaParameter
		if n, ok := item["parameters"]; ok {
			if err := n.Decode(&shared); err != nil {
				t.Fatalf("%s: parameters: %v", path, err)
			}
		}
		for key, n := range item {
			if key == "parameters" || key == "summary" || key == "description" || key == "servers" {
				continue
			}
			if !slices.Contains(oaMethods, key) {
				t.Errorf("%s: %q is not an HTTP method of OpenAPI (use lower case)", path, key)
				continue
			}
			var op oaOperation
			if err := n.Decode(&op); err != nil {
				t.Fatalf("%s %s: %v", key, path, err)
			}
			r := oaRoute{oaOperation: op}
			for _, p := range append(append([]oaParameter{}, shared...), op.Parameters...) {
				r.params = append(r.params, o.parameter(t, p))
			}
			o.routes[strings.ToUpper(key)+" "+path] = r
		}
	}
	return o
}

func (o *oaSpec) parameter(t *testing.T, p oaParameter) oaParameter {
	t.Helper()
	if p.Ref == "" {
		return p
	}
	name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/")
	q, found := o.doc.Components.Parameters[name]
	if !ok || !found {
		t.Errorf("parameter $ref %q does not resolve", p.Ref)
	}
	return q
}

func (o *oaSpec) response(t *testing.T, r oaResponse) oaResponse {
	t.Helper()
	if r.Ref == "" {
		return r
	}
	name, ok := strings.CutPrefix(r.Ref, "#/components/responses/")
	q, found := o.doc.Components.Responses[name]
	if !ok || !found {
		t.Errorf("response $ref %q does not resolve", r.Ref)
	}
	return q
}

// schemaNode returns the node at a path of keys below components/schemas.
func (o *oaSpec) schemaNode(t *testing.T, keys ...string) *yaml.Node {
	t.Helper()
	n, ok := o.doc.Components.Schemas[keys[0]]
	if !ok {
		t.Fatalf("components/schemas has no %s", keys[0])
	}
	cur := &n
	for _, k := range keys[1:] {
		cur = oaMappingValue(cur, k)
		if cur == nil {
			t.Fatalf("components/schemas/%s has no %s", strings.Join(keys, "/"), k)
		}
	}
	return cur
}

func oaMappingValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func oaStringList(t *testing.T, n *yaml.Node) []string {
	t.Helper()
	var out []string
	if err := n.Decode(&out); err != nil {
		t.Fatalf("line %d: want a list of strings: %v", n.Line, err)
	}
	return out
}

// oaRouteKey turns a ServeMux pattern into the key of openapi.yaml: the
// method, a space and the path, with {name...} written {name}.
var oaWildcardRest = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\.\.\.\}`)

func oaRouteKey(t *testing.T, pattern string) string {
	t.Helper()
	method, path, ok := strings.Cut(pattern, " ")
	if !ok || !strings.HasPrefix(path, "/") {
		t.Errorf("route %q has no method or does not start with /; OpenAPI documents method and path", pattern)
	}
	return method + " " + oaWildcardRest.ReplaceAllString(path, "{$1}")
}

var oaPathParam = regexp.MustCompile(`\{([^}$]+)\}`)

func oaPathParams(path string) []string {
	var out []string
	for _, m := range oaPathParam.FindAllStringSubmatch(path, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}

func oaSortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func oaSortedSet(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// oaDiff returns the elements of a not in b and of b not in a.
func oaDiff(a, b []string) (onlyA, onlyB []string) {
	for _, x := range a {
		if !slices.Contains(b, x) {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			onlyB = append(onlyB, x)
		}
	}
	return onlyA, onlyB
}

// TestOpenAPIRoutesMatchRouteTable: every route of the server is documented
// with its method, and every documented /v1 operation is served.
func TestOpenAPIRoutesMatchRouteTable(t *testing.T) {
	o := loadOpenAPI(t)
	var table []string
	for _, rt := range api.RouteTable() {
		table = append(table, oaRouteKey(t, rt.Pattern))
	}
	var documented []string
	for key := range o.routes {
		if !oaServiceEndpoints[key] {
			documented = append(documented, key)
		}
	}
	missing, extra := oaDiff(oaSortedSet(table), oaSortedSet(documented))
	if len(missing) > 0 {
		t.Errorf("routes of api/server.go routes() missing from %s (add them with their method):\n\t%s",
			oaPath, strings.Join(missing, "\n\t"))
	}
	if len(extra) > 0 {
		t.Errorf("operations in %s that are not in the route table (remove them, or add the route):\n\t%s",
			oaPath, strings.Join(extra, "\n\t"))
	}
	for key := range oaServiceEndpoints {
		if _, ok := o.routes[key]; !ok {
			t.Errorf("service endpoint %s is missing from %s", key, oaPath)
		}
	}
}

// TestOpenAPIOperations checks each operation on its own: an operationId,
// the success and 401 responses, the error body on every error response,
// Retry-After on 429, exactly the path parameters of its path, the roles the
// server lets call it, and the bearer token everywhere but the service
// endpoints.
func TestOpenAPIOperations(t *testing.T) {
	o := loadOpenAPI(t)
	if o.doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi: %q, want 3.0.3", o.doc.OpenAPI)
	}
	if o.doc.Info.Title != "licenseops" || o.doc.Info.Version != "v1" {
		t.Errorf("info: title %q version %q, want licenseops v1", o.doc.Info.Title, o.doc.Info.Version)
	}
	var bearer string
	for name, s := range o.doc.Components.SecuritySchemes {
		if s.Type == "http" && strings.EqualFold(s.Scheme, "bearer") {
			bearer = name
		}
	}
	if bearer == "" {
		t.Fatal("components/securitySchemes has no http bearer scheme")
	}
	if len(o.doc.Security) != 1 || o.doc.Security[0][bearer] == nil {
		t.Errorf("global security: %v, want [{%s: []}]", o.doc.Security, bearer)
	}

	roles := map[string][]string{}
	for _, rt := range api.RouteTable() {
		roles[oaRouteKey(t, rt.Pattern)] = rt.Roles
	}
	ids := map[string]string{}
	for _, key := range oaSortedKeys(o.routes) {
		r := o.routes[key]
		_, path, _ := strings.Cut(key, " ")
		service := oaServiceEndpoints[key]

		if r.OperationID == "" {
			t.Errorf("%s: no operationId", key)
		} else if prev, dup := ids[r.OperationID]; dup {
			t.Errorf("%s: operationId %q is also used by %s", key, r.OperationID, prev)
		}
		ids[r.OperationID] = key

		var success bool
		for code := range r.Responses {
			if len(code) == 3 && code[0] == '2' {
				success = true
			}
		}
		if !success {
			t.Errorf("%s: no 2xx response", key)
		}
		if !service {
			if _, ok := r.Responses["401"]; !ok {
				t.Errorf("%s: no 401 response", key)
			}
		}
		for code, resp := range r.Responses {
			resp = o.response(t, resp)
			if code == "default" || code[0] == '4' || (code[0] == '5' && !service) {
				if ref := resp.Content["application/json"].Schema.Ref; ref != "#/components/schemas/Error" {
					t.Errorf("%s: response %s has schema %q, want the contract's error body #/components/schemas/Error", key, code, ref)
				}
			}
			if code == "429" {
				if _, ok := resp.Headers["Retry-After"]; !ok {
					t.Errorf("%s: response 429 has no Retry-After header", key)
				}
			}
		}

		var declared []string
		for _, p := range r.params {
			if p.In != "path" {
				continue
			}
			declared = append(declared, p.Name)
			if !p.Required {
				t.Errorf("%s: path parameter %s is not required: true", key, p.Name)
			}
		}
		undeclared, unused := oaDiff(oaPathParams(path), oaSortedSet(declared))
		if len(undeclared) > 0 {
			t.Errorf("%s: path parameters not declared: %v", key, undeclared)
		}
		if len(unused) > 0 {
			t.Errorf("%s: declared path parameters not in the path: %v", key, unused)
		}
		if len(declared) != len(oaSortedSet(declared)) {
			t.Errorf("%s: a path parameter is declared twice: %v", key, declared)
		}

		switch {
		case service:
			if r.Security == nil || len(*r.Security) != 0 {
				t.Errorf("%s: a service endpoint needs no token; declare security: []", key)
			}
			if r.Roles != nil {
				t.Errorf("%s: a service endpoint has no roles, but x-roles is %v", key, r.Roles)
			}
		default:
			if r.Security != nil {
				t.Errorf("%s: overrides security (%v); /v1 routes use the global bearer token", key, *r.Security)
			}
			if want, ok := roles[key]; ok {
				if got := oaSortedSet(r.Roles); !slices.Equal(got, oaSortedSet(want)) {
					t.Errorf("%s: x-roles %v, but the server lets %v call it", key, r.Roles, want)
				}
			}
		}
	}
}

// oaLicensingCodes parses package licensing and returns the values of its
// constants of type Code, all of them and those of the "Per-user outcome
// codes" block. It reads the source rather than a list kept here, so that a
// code added there without being documented fails.
func oaLicensingCodes(t *testing.T) (all, perUser []string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "licensing", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in ../licensing (%v)", err)
	}
	fset := token.NewFileSet()
	var perUserBlock bool
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			inPerUser := gd.Doc != nil && strings.HasPrefix(gd.Doc.Text(), "Per-user outcome codes")
			perUserBlock = perUserBlock || inPerUser
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for _, v := range vs.Values {
					lit := oaCodeLiteral(vs.Type, v)
					if lit == nil {
						continue
					}
					code, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatalf("%s: %v", fset.Position(lit.Pos()), err)
					}
					all = append(all, code)
					if inPerUser {
						perUser = append(perUser, code)
					}
				}
			}
		}
	}
	if len(all) == 0 {
		t.Fatal("found no constants of type licensing.Code")
	}
	if !perUserBlock {
		t.Fatal(`found no const block documented "Per-user outcome codes ..." in package licensing`)
	}
	return oaSortedSet(all), oaSortedSet(perUser)
}

// oaCodeLiteral returns the string literal of a Code constant declared as
// `X Code = "..."` or `X = Code("...")`, else nil.
func oaCodeLiteral(typ ast.Expr, v ast.Expr) *ast.BasicLit {
	isCode := func(e ast.Expr) bool { id, ok := e.(*ast.Ident); return ok && id.Name == "Code" }
	if typ == nil {
		call, ok := v.(*ast.CallExpr)
		if !ok || !isCode(call.Fun) || len(call.Args) != 1 {
			return nil
		}
		v = call.Args[0]
	} else if !isCode(typ) {
		return nil
	}
	lit, ok := v.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return nil
	}
	return lit
}

// TestOpenAPIErrorCodes: the error body's code enum is every licensing.Code,
// and a report row's error code enum is the per-user outcome codes.
func TestOpenAPIErrorCodes(t *testing.T) {
	o := loadOpenAPI(t)
	all, perUser := oaLicensingCodes(t)

	enum := oaSortedSet(oaStringList(t, o.schemaNode(t, "Error", "properties", "error", "properties", "code", "enum")))
	if undocumented, unknown := oaDiff(all, enum); len(undocumented)+len(unknown) > 0 {
		t.Errorf("components/schemas/Error code enum differs from the licensing.Code constants:\n\tmissing from %s: %v\n\tnot a licensing.Code: %v",
			oaPath, undocumented, unknown)
	}
	outcome := oaSortedSet(oaStringList(t, o.schemaNode(t, "OutcomeError", "properties", "code", "enum")))
	if undocumented, unknown := oaDiff(perUser, outcome); len(undocumented)+len(unknown) > 0 {
		t.Errorf("components/schemas/OutcomeError code enum differs from licensing's per-user outcome codes:\n\tmissing from %s: %v\n\tnot a per-user outcome code: %v",
			oaPath, undocumented, unknown)
	}
}

// TestOpenAPISchemasMatchCode checks the details that the code defines in
// one place: the roles and the CSV report's columns.
func TestOpenAPISchemasMatchCode(t *testing.T) {
	o := loadOpenAPI(t)
	if got, want := oaSortedSet(oaStringList(t, o.schemaNode(t, "AuditEntry", "properties", "role", "enum"))), oaSortedSet(licensing.Roles()); !slices.Equal(got, want) {
		t.Errorf("AuditEntry role enum %v, want licensing.Roles() %v", got, want)
	}
	for key, r := range o.routes {
		if rs := r.Roles; rs != nil {
			if _, unknown := oaDiff(licensing.Roles(), rs); len(unknown) > 0 {
				t.Errorf("%s: x-roles names roles that do not exist: %v", key, unknown)
			}
		}
	}

	report, ok := o.routes["GET /v1/operations/{oid}/report"]
	if !ok {
		t.Fatal("the report route is not documented")
	}
	csvType, ok := o.response(t, report.Responses["200"]).Content["text/csv"]
	if !ok {
		t.Fatal("the report's 200 response has no text/csv alternative")
	}
	example, _ := csvType.Example.(string)
	header, _, _ := strings.Cut(example, "\n")
	if want := strings.Join(api.CSVHeader, ","); header != want {
		t.Errorf("the CSV report example's header is %q, want api.CSVHeader %q", header, want)
	}
}

// TestOpenAPIRefsResolve: every $ref points at a component that exists.
func TestOpenAPIRefsResolve(t *testing.T) {
	o := loadOpenAPI(t)
	components := oaMappingValue(o.root.Content[0], "components")
	if components == nil {
		t.Fatal("no components")
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value != "$ref" {
					continue
				}
				ref := n.Content[i+1].Value
				parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
				if !strings.HasPrefix(ref, "#/components/") || len(parts) != 2 {
					t.Errorf("line %d: $ref %q is not of the form #/components/<kind>/<name>", n.Content[i+1].Line, ref)
					continue
				}
				if kind := oaMappingValue(components, parts[0]); kind == nil || oaMappingValue(kind, parts[1]) == nil {
					t.Errorf("line %d: $ref %q does not resolve", n.Content[i+1].Line, ref)
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&o.root)
}

// TestOpenAPIIDsMatchValidID: what openapi.yaml says of client-chosen IDs
// agrees with licensing.ValidID. The ID schema's pattern and length accept
// every valid ID (a plain space included; JSON Schema cannot say "printable"
// exactly, so the pattern may be looser), and no description claims that IDs
// exclude every whitespace or that the limit counts bytes.
func TestOpenAPIIDsMatchValidID(t *testing.T) {
	o := loadOpenAPI(t)
	var id struct {
		MinLength int    `yaml:"minLength"`
		MaxLength int    `yaml:"maxLength"`
		Pattern   string `yaml:"pattern"`
	}
	n := o.schemaNode(t, "ID")
	if err := n.Decode(&id); err != nil {
		t.Fatal(err)
	}
	if id.MinLength != 1 || id.MaxLength != licensing.MaxIDLength {
		t.Errorf("ID schema: length %d–%d, want 1–%d", id.MinLength, id.MaxLength, licensing.MaxIDLength)
	}
	pattern, err := regexp.Compile(id.Pattern)
	if err != nil {
		t.Fatalf("ID pattern %q: %v", id.Pattern, err)
	}
	for _, s := range []string{"a b", " ", " lead", "trail ", "Jan Kowalski", "=x+y@z", "zażółć", "emoji-🚀",
		strings.Repeat("é", licensing.MaxIDLength)} {
		if !licensing.ValidID(s) {
			t.Fatalf("licensing.ValidID(%q) is false; the test's samples are out of date", s)
		}
		if !pattern.MatchString(s) || len([]rune(s)) > id.MaxLength {
			t.Errorf("the ID schema refuses %q, which licensing.ValidID accepts", s)
		}
	}
	data, err := os.ReadFile(oaPath)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(data)), " ")
	for _, wrong := range []string{"without whitespace", "counts bytes"} {
		if strings.Contains(text, wrong) {
			t.Errorf("%s says IDs are %q, but licensing.ValidID allows a plain space and counts characters", oaPath, wrong)
		}
	}
}
