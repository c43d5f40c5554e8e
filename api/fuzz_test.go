package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/licenseops/licenseops/licensing"
)

// FuzzOperationRequest feeds arbitrary bodies to the operation decoder.
// Whatever the input: no panic; a refusal is InvalidRequest, never an
// internal error, and names a key only when the body's keys are not exact
// and distinct. What the intake makes of a decoded request is fuzzed in
// package intake (FuzzRequest).
func FuzzOperationRequest(f *testing.F) {
	for _, seed := range []string{
		`{"user_ids":["u1"],"assign":["E5"]}`,
		`{"user_ids":["u1","u2","u1"],"assign":["E5","VISIO"],"revoke":["E3"],"usage_location":"pl","allow_partial":true}`,
		`{"user_ids":["u1"],"assign":["E5"],"revoke":["E5"]}`,
		`{"user_ids":[],"assign":["E5"]}`,
		`{"user_ids":["u1"]}`,
		`{"user_ids":["a/b"],"assign":["E5"]}`,
		`{"user_ids":["u1"],"assign":["E5"],"usage_location":"UK"}`,
		`{"user_ids":["u1"],"assign":["E5"],"usage_location":null}`,
		`{"user_ids":"u1","assign":["E5"]}`,
		`{"user_ids":["u1"],"assign":["E5"],"extra":1}`,
		`{"user_ids":["u1"],"assign":["E5"]} {}`,
		`{"user_ids":["u1"],"assign":["E5"]`,
		`{"user_ids":["\u0000"],"assign":["\ud800"]}`,
		`{"user_ids":["ü\u00a0"],"assign":["E5"],"allow_partial":"yes"}`,
		"{\"user_ids\":[\"u\xff\",\"u\xfe\"],\"assign\":[\"E5\"]}",
		`[]`, `null`, `""`, ``, `   `, `{}`, `{"user_ids":null,"assign":null}`,
		`{"USER_IDS":["u1"],"Assign":["E5"]}`,
		`{"user_ids":["u1"],"assign":["E5"],"user_ids":["u2"]}`,
		`{"user_ids":["u1"],"assign":["E5"],"revoke":[],"revoke":["E3"]}`,
		`{"user\u005fids":["u1"],"assign":["E5"]}`,
		`{"user_ids":["u1"],"aſſign":["E5"]}`,
		`{"user_ids":["u1\"","\\"],"assign":["E5"],"Allow_Partial":true}`,
		`{"user_ids":["u1","u2","u3","u4"],"assign":["A","B","C","D","E","F","G","H","I","J","K","L","M","N","O","P","Q","R","S","T","U","V","W","X","Y","Z","AA","AB","AC","AD","AE"]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req operationRequest
		err := decodeBytes(body, &req)
		// Against a reference: what the decoder did before the strict key
		// check, and a json.Decoder token walk of the keys.
		var lenient operationRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		lenientOK := utf8.Valid(body) && dec.Decode(&lenient) == nil && !dec.More()
		if bad := keyProblem(body); err == nil && bad != "" {
			t.Fatalf("%q accepted although %s", body, bad)
		} else if err != nil && lenientOK && bad == "" && strings.Contains(licensing.ErrorMessage(err), "field") {
			t.Fatalf("%q refused (%v) for its keys, which are exact and distinct", body, err)
		}
		if err != nil {
			if code := licensing.ErrorCode(err); code != licensing.CodeInvalidRequest {
				t.Fatalf("%q refused with %s (%v), want InvalidRequest", body, code, err)
			}
			if licensing.ErrorMessage(err) == "" {
				t.Fatalf("%q refused without a message", body)
			}
		}
	})
}

// keyProblem is the reference for the strict key check, slow and plain: a
// token walk that reports a repeated key in any object, or a top-level key
// that is not exactly a field of operationRequest. "" means none (or a
// body that is not JSON at all).
func keyProblem(body []byte) string {
	known := map[string]bool{"user_ids": true, "assign": true, "revoke": true, "usage_location": true, "allow_partial": true, "dry_run": true}
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		object, wantKey bool
		seen            map[string]bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		top := (*frame)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.wantKey {
			if key, ok := tok.(string); ok {
				if top.seen[key] {
					return fmt.Sprintf("key %q repeats", key)
				}
				top.seen[key] = true
				if len(stack) == 1 && !known[key] {
					return fmt.Sprintf("key %q is not a field", key)
				}
				top.wantKey = false
				continue
			}
		}
		if top != nil && top.object {
			top.wantKey = true // the value of a key is being read
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, wantKey: true, seen: map[string]bool{}})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return ""
			}
		}
	}
}

// FuzzCSVRecord checks that no cell of a CSV report row, whatever the IDs,
// names and messages, starts with a character a spreadsheet would take for
// the start of a formula, and that defusing only ever adds a leading quote.
func FuzzCSVRecord(f *testing.F) {
	f.Add("=cmd", "@SUM(1+1)", "+48 600", "-1", "=E5", "no seat is left for =E5")
	f.Add("u1", "Ann", "ann@x", "E5", "E3", "")
	f.Add("\tx", "\r\n", "", "", "", "=1+1")
	f.Fuzz(func(t *testing.T, userID, name, upn, skuA, skuB, message string) {
		loc := "PL"
		row := &licensing.ReportRow{
			UserID: userID, DisplayName: name, UserPrincipalName: upn, Status: "failed",
			Assigned: []string{skuA}, Revoked: []string{skuB}, Licenses: []string{skuA, skuB}, UsageLocation: &loc,
			Error:          &licensing.Error{Code: licensing.CodeCountViolation, Message: message},
			LicenseSources: []licensing.LicenseSource{{SKU: skuA, InheritedFrom: []string{name}}},
			Note:           message,
			DisabledPlans:  map[string][]string{skuA: {skuB}},
		}
		rec := make([]string, len(CSVHeader))
		licensing.ReportCSVRecord(rec, row)
		raw := []string{userID, name, upn, "failed", skuA, skuB, skuA + ";" + skuB, loc, string(licensing.CodeCountViolation), message, "",
			skuA + ":" + name, message, skuA + ":" + skuB}
		for i, cell := range rec {
			if cell != "" && strings.ContainsRune("=+-@\t\r\n", rune(cell[0])) {
				t.Fatalf("cell %s = %q starts with a formula character", CSVHeader[i], cell)
			}
			if cell != raw[i] && cell != "'"+raw[i] {
				t.Fatalf("cell %s = %q, want %q with at most a leading quote", CSVHeader[i], cell, raw[i])
			}
		}
	})
}

// strictBody exercises every shape checkKeys walks: nested structs through
// pointers and slices, embedded structs, maps and interfaces (whose keys
// are data), and a type that decodes itself.
type strictBody struct {
	strictEmbedded
	Name   string            `json:"name"`
	Rule   *strictRule       `json:"rule"`
	Users  []strictRule      `json:"users"`
	Labels map[string]string `json:"labels"`
	Any    any               `json:"any"`
	Raw    json.RawMessage   `json:"raw"`
	When   *time.Time        `json:"when"`
	Plain  string            // no tag: its Go name
	Skip   string            `json:"-"`
}

type strictEmbedded struct {
	Promoted string `json:"promoted"`
}

type strictRule struct {
	Kind string `json:"kind"`
	Days *int   `json:"days"`
}

func TestDecodeStrictKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		says string // "" means accepted
	}{
		{`{"name":"a","rule":{"kind":"k","days":1},"users":[{"kind":"x"},{}],"promoted":"p","Plain":"q"}`, ""},
		{`{"labels":{"A":"1","a":"2"},"any":{"X":1,"x":[{"Y":2,"y":3}]},"raw":{"K":1,"K":2},"when":"2024-01-01T00:00:00Z"}`, ""},
		{`{"name\u0000":"a"}`, `unknown field "name\x00"`},
		{`{"nam\u0065":"a","rule":null,"users":null}`, ""}, // escaped, but exactly "name"
		{` { "name" : "a" , "rule" : { "kind" : "k" } } `, ""},
		{`{"n\\":"a"}`, `unknown field "n\\"`},

		{`{"NAME":"a"}`, `unknown field "NAME"; field names are case-sensitive: use "name"`},
		{`{"Name":"a"}`, `use "name"`},
		{`{"Promoted":"a"}`, `use "promoted"`},
		{`{"plain":"a"}`, `use "Plain"`},
		{`{"rule":{"Kind":"k"}}`, `unknown field "Kind" in rule; field names are case-sensitive: use "kind"`},
		{`{"users":[{"kind":"a"},{"KIND":"b"}]}`, `unknown field "KIND" in users[1]`},
		{`{"ruſe":{}}`, `unknown field "ruſe"`}, // U+017F folds to s in encoding/json
		{`{"name":"a","name":"b"}`, `field "name" appears more than once`},
		{`{"name":"a","n\u0061me":"b"}`, `field "name" appears more than once`},
		{`{"promoted":"a","promoted":"a"}`, `field "promoted" appears more than once`},
		{`{"users":[{"kind":"a","days":1,"days":2}]}`, `field "days" in users[0] appears more than once`},
		{`{"labels":{"a":"1","a":"2"}}`, `field "a" in labels appears more than once`},
		{`{"any":[{"x":1},{"x":1,"x":2}]}`, `field "x" in any[1] appears more than once`},
	}
	for _, tt := range tests {
		var v strictBody
		err := decodeBytes([]byte(tt.body), &v)
		switch {
		case tt.says == "" && err != nil:
			t.Errorf("%s: refused: %v", tt.body, err)
		case tt.says != "" && err == nil:
			t.Errorf("%s: accepted, want refused saying %q", tt.body, tt.says)
		case tt.says != "" && (licensing.ErrorCode(err) != licensing.CodeInvalidRequest || !strings.Contains(licensing.ErrorMessage(err), tt.says)):
			t.Errorf("%s: %v, want InvalidRequest saying %q", tt.body, err, tt.says)
		}
	}
}

// BenchmarkDecodeOperation100k decodes a 100,000-user operation body: the
// decoder's share of BenchmarkIntake100k.
func BenchmarkDecodeOperation100k(b *testing.B) {
	ids := make([]string, 100_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("2f1c8a3e-0000-4000-8000-%012d", i)
	}
	body, _ := json.Marshal(map[string]any{"user_ids": ids, "assign": []string{"E5"}, "allow_partial": true})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var req operationRequest
		if err := decodeBytes(body, &req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckKeys100k is the strict key check alone on the same body.
func BenchmarkCheckKeys100k(b *testing.B) {
	ids := make([]string, 100_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("2f1c8a3e-0000-4000-8000-%012d", i)
	}
	body, _ := json.Marshal(map[string]any{"user_ids": ids, "assign": []string{"E5"}, "allow_partial": true})
	t := reflect.TypeFor[*operationRequest]()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := checkKeys(body, t); err != nil {
			b.Fatal(err)
		}
	}
}
