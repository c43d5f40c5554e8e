package licensing

import "strings"

// CheckID returns an InvalidRequest error naming kind when id is not a
// valid client-chosen ID (ValidID).
func CheckID(kind, id string) error {
	if !ValidID(id) {
		return Errorf(CodeInvalidRequest, "%s %q is not a valid ID: use 1–%d printable characters without '/'", kind, Truncate(id, 40), MaxIDLength)
	}
	return nil
}

// CheckIDs is CheckID for each of ids.
func CheckIDs(kind string, ids []string) error {
	for _, id := range ids {
		if err := CheckID(kind, id); err != nil {
			return err
		}
	}
	return nil
}

// NormalizeCountry upper-cases and checks an ISO 3166-1 alpha-2 code; a bad
// one is an InvalidRequest error naming field.
func NormalizeCountry(field, cc string) (string, error) {
	up := strings.ToUpper(strings.TrimSpace(cc))
	if !ValidCountry(up) {
		return "", Errorf(CodeInvalidRequest, "%s %q is not an ISO 3166-1 alpha-2 country code (for example PL, US, DE)", field, Truncate(cc, 10))
	}
	return up, nil
}

// NormalizeCountries is NormalizeCountry for each of ccs; nil stays nil.
func NormalizeCountries(field string, ccs []string) ([]string, error) {
	if ccs == nil {
		return nil, nil
	}
	out := make([]string, 0, len(ccs))
	for _, cc := range ccs {
		up, err := NormalizeCountry(field, cc)
		if err != nil {
			return nil, err
		}
		out = append(out, up)
	}
	return out, nil
}

// Dedupe returns ids without repeats, keeping first occurrences in order.
func Dedupe(ids []string) []string {
	seen := make(map[string]struct{}, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if _, ok := seen[id]; ok {
			continue
		}
		seen[id] = struct{}{}
		out = append(out, id)
	}
	return out
}

// Truncate shortens s to n bytes and an ellipsis, for quoting what a client
// sent in a message without echoing all of it.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
