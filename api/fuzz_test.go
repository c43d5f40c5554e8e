package api

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// FuzzOperationRequest feeds arbitrary bodies to the operation decoder and
// validator. Whatever the input: no panic; a refusal is InvalidRequest or
// TooLarge, never an internal error; an accepted request is normalized
// (distinct valid IDs, no SKU both assigned and revoked, an assigned
// country code), and normalizing it again changes nothing, so a retry of
// it has the same idempotency fingerprint.
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
		`{"user_ids":["u1","u2","u3","u4"],"assign":["A","B","C","D","E","F","G","H","I","J","K","L","M","N","O","P","Q","R","S","T","U","V","W","X","Y","Z","AA","AB","AC","AD","AE"]}`,
	} {
		f.Add([]byte(seed))
	}
	const maxUsers = 3 // small, so that the fuzzer reaches the limit
	f.Fuzz(func(t *testing.T, body []byte) {
		var req operationRequest
		err := decodeBytes(body, &req)
		if err == nil {
			err = req.validate(maxUsers)
		}
		if err != nil {
			if code := licensing.ErrorCode(err); code != licensing.CodeInvalidRequest && code != licensing.CodeTooLarge {
				t.Fatalf("%q refused with %s (%v), want InvalidRequest or TooLarge", body, code, err)
			}
			if licensing.ErrorMessage(err) == "" {
				t.Fatalf("%q refused without a message", body)
			}
			return
		}
		checkNormalized(t, body, &req, maxUsers)
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var req2 operationRequest
		if err := decodeBytes(again, &req2); err != nil {
			t.Fatalf("normalized %s does not decode: %v", again, err)
		}
		if err := req2.validate(maxUsers); err != nil {
			t.Fatalf("normalized %s is refused: %v", again, err)
		}
		if !bytes.Equal(req.fingerprint("c"), req2.fingerprint("c")) {
			t.Fatalf("%q and its normalized form %s have different fingerprints", body, again)
		}
	})
}

func checkNormalized(t *testing.T, body []byte, req *operationRequest, maxUsers int) {
	t.Helper()
	if len(req.UserIDs) == 0 || len(req.UserIDs) > maxUsers {
		t.Fatalf("%q accepted with %d users", body, len(req.UserIDs))
	}
	if len(req.Assign)+len(req.Revoke) == 0 || len(req.Assign)+len(req.Revoke) > storage.MaxSKUsPerOperation {
		t.Fatalf("%q accepted with %d SKUs", body, len(req.Assign)+len(req.Revoke))
	}
	seen := map[string]string{}
	for list, ids := range map[string][]string{"user_ids": req.UserIDs, "assign": req.Assign, "revoke": req.Revoke} {
		for _, id := range ids {
			if !licensing.ValidID(id) {
				t.Fatalf("%q accepted with invalid %s ID %q", body, list, id)
			}
			key := list + "\x00" + id
			if _, dup := seen[key]; dup {
				t.Fatalf("%q accepted with %s ID %q twice", body, list, id)
			}
			seen[key] = list
		}
	}
	for _, a := range req.Assign {
		if _, both := seen["revoke\x00"+a]; both {
			t.Fatalf("%q accepted with %q both assigned and revoked", body, a)
		}
	}
	if req.UsageLocation != nil && !licensing.ValidCountry(*req.UsageLocation) {
		t.Fatalf("%q accepted with usage_location %q", body, *req.UsageLocation)
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
		row := &storage.ReportRow{
			UserID: userID, DisplayName: name, UserPrincipalName: upn, Status: "failed",
			Assigned: []string{skuA}, Revoked: []string{skuB}, Licenses: []string{skuA, skuB}, UsageLocation: &loc,
			Error: &licensing.Error{Code: licensing.CodeCountViolation, Message: message},
		}
		rec := make([]string, len(CSVHeader))
		csvRecord(rec, row)
		raw := []string{userID, name, upn, "failed", skuA, skuB, skuA + ";" + skuB, loc, string(licensing.CodeCountViolation), message}
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
