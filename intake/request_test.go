package intake

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/licensing"
)

// body is an operation request as the API decodes it.
type body struct {
	UserIDs       []string `json:"user_ids"`
	Assign        []string `json:"assign"`
	Revoke        []string `json:"revoke"`
	UsageLocation *string  `json:"usage_location"`
	AllowPartial  bool     `json:"allow_partial"`
}

func (b body) request() Request {
	return Request{Principal: &licensing.Principal{PartnerKey: 1, TokenName: "t"}, Customer: licensing.Customer{ID: "c"},
		UserIDs: b.UserIDs, Assign: b.Assign, Revoke: b.Revoke, UsageLocation: b.UsageLocation, AllowPartial: b.AllowPartial,
		Source: licensing.SourceAPI}
}

// FuzzRequest feeds arbitrary requests to the validator. Whatever the
// input: no panic; a refusal is InvalidRequest or TooLarge, never an
// internal error; an accepted request is normalized (distinct valid IDs, no
// SKU both assigned and revoked, an assigned country code), and
// normalizing it again changes nothing, so a retry of it has the same
// idempotency fingerprint.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{
		`{"user_ids":["u1"],"assign":["E5"]}`,
		`{"user_ids":["u1","u2","u1"],"assign":["E5","VISIO"],"revoke":["E3"],"usage_location":"pl","allow_partial":true}`,
		`{"user_ids":["u1"],"assign":["E5"],"revoke":["E5"]}`,
		`{"user_ids":[],"assign":["E5"]}`,
		`{"user_ids":["u1"]}`,
		`{"user_ids":["a/b"],"assign":["E5"]}`,
		`{"user_ids":["u1"],"assign":["E5"],"usage_location":"UK"}`,
		`{"user_ids":["u1"],"assign":["E5"],"usage_location":" de "}`,
		`{"user_ids":["u1"],"assign":["E5"],"usage_location":null}`,
		`{"user_ids":["\u0000"],"assign":["\ud800"]}`,
		`{"user_ids":["ü\u00a0"],"assign":["E5"]}`,
		"{\"user_ids\":[\"u\xff\",\"u\xfe\"],\"assign\":[\"E5\"]}",
		`{"user_ids":["u1","u1","u1","u1","u1","u1","u1"],"assign":["E5"]}`,
		`{"user_ids":["u1","u2","u3","u4"],"assign":["E5"]}`,
		`{"user_ids":["u1","u2","u3","u4"],"assign":["A","B","C","D","E","F","G","H","I","J","K","L","M","N","O","P","Q","R","S","T","U","V","W","X","Y","Z","AA","AB","AC","AD","AE"]}`,
	} {
		f.Add([]byte(seed))
	}
	const maxUsers = 3 // small, so that the fuzzer reaches the limit
	f.Fuzz(func(t *testing.T, raw []byte) {
		var b body
		if json.Unmarshal(raw, &b) != nil {
			return
		}
		req := b.request()
		if err := req.validate(maxUsers); err != nil {
			if code := licensing.ErrorCode(err); code != licensing.CodeInvalidRequest && code != licensing.CodeTooLarge {
				t.Fatalf("%q refused with %s (%v), want InvalidRequest or TooLarge", raw, code, err)
			}
			if licensing.ErrorMessage(err) == "" {
				t.Fatalf("%q refused without a message", raw)
			}
			return
		}
		checkNormalized(t, raw, &req, maxUsers)
		again, err := json.Marshal(body{req.UserIDs, req.Assign, req.Revoke, req.UsageLocation, req.AllowPartial})
		if err != nil {
			t.Fatal(err)
		}
		var b2 body
		if err := json.Unmarshal(again, &b2); err != nil {
			t.Fatalf("normalized %s does not decode: %v", again, err)
		}
		req2 := b2.request()
		if err := req2.validate(maxUsers); err != nil {
			t.Fatalf("normalized %s is refused: %v", again, err)
		}
		if !bytes.Equal(req.fingerprint(), req2.fingerprint()) {
			t.Fatalf("%q and its normalized form %s have different fingerprints", raw, again)
		}
	})
}

func checkNormalized(t *testing.T, raw []byte, req *Request, maxUsers int) {
	t.Helper()
	if len(req.UserIDs) == 0 || len(req.UserIDs) > maxUsers {
		t.Fatalf("%q accepted with %d users", raw, len(req.UserIDs))
	}
	if len(req.Assign)+len(req.Revoke) == 0 || len(req.Assign)+len(req.Revoke) > licensing.MaxSKUsPerOperation {
		t.Fatalf("%q accepted with %d SKUs", raw, len(req.Assign)+len(req.Revoke))
	}
	seen := map[string]string{}
	for list, ids := range map[string][]string{"user_ids": req.UserIDs, "assign": req.Assign, "revoke": req.Revoke} {
		for _, id := range ids {
			if !licensing.ValidID(id) {
				t.Fatalf("%q accepted with invalid %s ID %q", raw, list, id)
			}
			key := list + "\x00" + id
			if _, dup := seen[key]; dup {
				t.Fatalf("%q accepted with %s ID %q twice", raw, list, id)
			}
			seen[key] = list
		}
	}
	for _, a := range req.Assign {
		if _, both := seen["revoke\x00"+a]; both {
			t.Fatalf("%q accepted with %q both assigned and revoked", raw, a)
		}
	}
	if req.UsageLocation != nil && !licensing.ValidCountry(*req.UsageLocation) {
		t.Fatalf("%q accepted with usage_location %q", raw, *req.UsageLocation)
	}
}

// The idempotency fingerprint is the SHA-256 of the normalized request in
// the JSON the API has always hashed: a change of it would refuse, as
// IdempotencyKeyReused, the retries of requests taken before a deploy.
func TestFingerprintIsStable(t *testing.T) {
	t.Parallel()
	loc := "pl"
	req := body{UserIDs: []string{"u2", "u1", "u2"}, Assign: []string{"E5"}, UsageLocation: &loc, AllowPartial: true}.request()
	if err := req.validate(10); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(`{"c":"c","user_ids":["u2","u1"],"assign":["E5"],"revoke":null,"usage_location":"PL","allow_partial":true}`))
	if got := req.fingerprint(); !bytes.Equal(got, want[:]) {
		t.Fatalf("fingerprint %x, want %x", got, want)
	}
}

// Replace pairs are checked with a message that says what to change;
// repeated pairs count once and count in the limit of SKUs.
func TestValidateReplace(t *testing.T) {
	pair := func(from, to string) licensing.Replacement { return licensing.Replacement{From: from, To: to} }
	many := make([]string, licensing.MaxSKUsPerOperation-1)
	for i := range many {
		many[i] = string(rune('A'+i%26)) + string(rune('A'+i/26))
	}
	for _, tc := range []struct {
		name    string
		assign  []string
		revoke  []string
		replace []licensing.Replacement
		code    licensing.Code
		message string // a part of the message
		want    []licensing.Replacement
	}{
		{name: "alone", replace: []licensing.Replacement{pair("E3", "E5"), pair("E1", "E5"), pair("E3", "E5")},
			want: []licensing.Replacement{pair("E3", "E5"), pair("E1", "E5")}},
		{name: "with assign and revoke", assign: []string{"VISIO"}, revoke: []string{"PROJ"}, replace: []licensing.Replacement{pair("E3", "E5")},
			want: []licensing.Replacement{pair("E3", "E5")}},
		{name: "same", replace: []licensing.Replacement{pair("E3", "E3")}, code: licensing.CodeInvalidRequest, message: "from and to are the same SKU"},
		{name: "two targets", replace: []licensing.Replacement{pair("E3", "E5"), pair("E3", "E1")}, code: licensing.CodeInvalidRequest,
			message: "SKU E3 is replaced twice, by E5 and by E1"},
		{name: "chain", replace: []licensing.Replacement{pair("E1", "E3"), pair("E3", "E5")}, code: licensing.CodeInvalidRequest,
			message: "SKU E3 is both replaced and a replacement"},
		{name: "chain backwards", replace: []licensing.Replacement{pair("E3", "E5"), pair("E1", "E3")}, code: licensing.CodeInvalidRequest,
			message: "SKU E3 is both replaced and a replacement"},
		{name: "target assigned", assign: []string{"E5"}, replace: []licensing.Replacement{pair("E3", "E5")}, code: licensing.CodeInvalidRequest,
			message: "SKU E5 is in replace and in assign or revoke"},
		{name: "source revoked", revoke: []string{"E3"}, replace: []licensing.Replacement{pair("E3", "E5")}, code: licensing.CodeInvalidRequest,
			message: "SKU E3 is in replace and in assign or revoke"},
		{name: "bad ID", replace: []licensing.Replacement{pair("E3", "a/b")}, code: licensing.CodeInvalidRequest, message: "replace SKU"},
		{name: "too many", assign: many, replace: []licensing.Replacement{pair("X1", "X2")}, code: licensing.CodeTooLarge,
			message: "assign, revoke and replace has 31 entries; the limit is 30"},
		{name: "nothing", code: licensing.CodeInvalidRequest, message: "assign, revoke or replace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := body{UserIDs: []string{"u1"}, Assign: tc.assign, Revoke: tc.revoke}.request()
			req.Replace = tc.replace
			err := req.validate(10)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !slices.Equal(req.Replace, tc.want) {
					t.Fatalf("replace = %v, want %v", req.Replace, tc.want)
				}
				return
			}
			if licensing.ErrorCode(err) != tc.code || !strings.Contains(licensing.ErrorMessage(err), tc.message) {
				t.Fatalf("error = %v, want %s with %q", err, tc.code, tc.message)
			}
		})
	}
}

// copy_from goes alone, exact only with it, and the reference must be a
// valid ID; a copy changes the idempotency fingerprint, and a request
// without one keeps its bytes.
func TestValidateCopy(t *testing.T) {
	for _, tc := range []struct {
		name           string
		copyFrom       string
		exact          bool
		assign, revoke []string
		replace        []licensing.Replacement
		message        string
	}{
		{name: "copy", copyFrom: "u9"},
		{name: "exact copy", copyFrom: "u9", exact: true},
		{name: "with assign", copyFrom: "u9", assign: []string{"E5"}, message: "copy_from gives the licenses of user u9 and goes alone"},
		{name: "with revoke", copyFrom: "u9", revoke: []string{"E5"}, message: "goes alone"},
		{name: "with replace", copyFrom: "u9", replace: []licensing.Replacement{{From: "E3", To: "E5"}}, message: "goes alone"},
		{name: "exact alone", exact: true, assign: []string{"E5"}, message: "exact goes with copy_from"},
		{name: "bad ID", copyFrom: "a/b", message: "copy_from user id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := body{UserIDs: []string{"u1"}, Assign: tc.assign, Revoke: tc.revoke}.request()
			req.CopyFrom, req.Exact, req.Replace = tc.copyFrom, tc.exact, tc.replace
			err := req.validate(10)
			if tc.message == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if licensing.ErrorCode(err) != licensing.CodeInvalidRequest || !strings.Contains(licensing.ErrorMessage(err), tc.message) {
				t.Fatalf("error = %v, want InvalidRequest with %q", err, tc.message)
			}
		})
	}
	plain := body{UserIDs: []string{"u1"}}.request()
	copied := plain
	copied.CopyFrom = "u9"
	exact := copied
	exact.Exact = true
	if bytes.Equal(plain.fingerprint(), copied.fingerprint()) || bytes.Equal(copied.fingerprint(), exact.fingerprint()) {
		t.Error("copy_from and exact do not change the fingerprint")
	}
}
