package licensing

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestValidID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"op-2024-01-01_rollout.1", true},
		{"zażółć", true},
		{"日本語", true},
		{"emoji-🚀", true},
		{"a:b@c!#$%&*+=?^`{|}~", true},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("é", 128), true}, // 128 characters, 256 bytes
		{strings.Repeat("🚀", 128), true}, // 128 characters, 512 bytes
		// The contract: "1–128 printable characters without /"; the ASCII space
		// is printable.
		{"a b", true},
		{" a", true},
		{"a ", true},
		{" ", true},
		{"Jan Kowalski", true},

		{"", false},
		{strings.Repeat("x", 129), false},
		{strings.Repeat("é", 129), false},
		{strings.Repeat("🚀", 129), false},
		{strings.Repeat("x", 127) + "\xff", false},
		{"a/b", false},
		{"/", false},
		{"a\tb", false},
		{"a\nb", false},
		{"a\u00a0b", false}, // no-break space
		{"a\u3000b", false}, // ideographic space
		{"a\u2028b", false}, // line separator
		{"a\x00b", false},
		{"a\x7fb", false},
		{"a\u200bb", false}, // zero-width space: format char, not printable
		{"\xff", false},
		{"a\xc3", false}, // truncated UTF-8
		{"\ufffd", true}, // a real U+FFFD is printable and valid
	}
	for _, tt := range tests {
		if got := ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestValidCountry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cc   string
		want bool
	}{
		{"PL", true}, {"US", true}, {"GB", true}, {"AD", true}, {"ZW", true},
		{"AX", true}, {"SS", true}, {"CW", true}, {"BQ", true},

		{"UK", false}, {"EU", false}, {"XK", false}, {"AA", false}, {"ZZ", false},
		{"pl", false}, {"Pl", false}, {"pL", false},
		{"", false}, {"P", false}, {"POL", false}, {"PL ", false},
		{"@A", false}, {"A[", false}, {"\x00\x00", false}, {"ÄA", false},
	}
	for _, tt := range tests {
		if got := ValidCountry(tt.cc); got != tt.want {
			t.Errorf("ValidCountry(%q) = %v, want %v", tt.cc, got, tt.want)
		}
	}
}

// TestCountryList guards the constant against typos: exactly 249 distinct,
// sorted, well-formed codes, all of which the lookup accepts.
func TestCountryList(t *testing.T) {
	t.Parallel()
	codes := strings.Fields(isoCountries)
	if len(codes) != 249 {
		t.Errorf("got %d codes, want 249", len(codes))
	}
	if len(isoCountries) != 3*len(codes)-1 {
		t.Errorf("isoCountries is not uniformly separated by single spaces")
	}
	for i, c := range codes {
		if len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
			t.Errorf("malformed code %q", c)
		}
		if i > 0 && codes[i-1] >= c {
			t.Errorf("codes not strictly sorted at %q, %q", codes[i-1], c)
		}
		if !ValidCountry(c) {
			t.Errorf("ValidCountry(%q) = false", c)
		}
	}
	n := 0
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			if ValidCountry(string([]rune{a, b})) {
				n++
			}
		}
	}
	if n != 249 {
		t.Errorf("ValidCountry accepts %d codes, want 249", n)
	}
}

// TestValidatorsDoNotAllocate runs serially because AllocsPerRun counts
// allocations process-wide.
func TestValidatorsDoNotAllocate(t *testing.T) {
	id := "op-2024-rollout-ążź"
	if n := testing.AllocsPerRun(100, func() { ValidID(id); ValidCountry("PL") }); n != 0 {
		t.Errorf("got %v allocations, want 0", n)
	}
}

func FuzzValidID(f *testing.F) {
	for _, s := range []string{"a", "a/b", "a b", " ", "zażółć", "\xff", strings.Repeat("x", 128), strings.Repeat("x", 129),
		strings.Repeat("é", 128), strings.Repeat("é", 129), "\u00a0", "\ufffd", "a\tb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// The contract, restated independently: 1–128 printable characters
		// of UTF-8 without '/'; the only whitespace that is printable is
		// the ASCII space.
		n := utf8.RuneCountInString(s)
		want := utf8.ValidString(s) && n >= 1 && n <= 128 && !strings.ContainsRune(s, '/') &&
			strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
		if got := ValidID(s); got != want {
			t.Fatalf("ValidID(%q) = %v, want %v", s, got, want)
		}
		if !want {
			return
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f || (unicode.IsSpace(r) && r != ' ') {
				t.Fatalf("accepted %q containing control or invisible space %U", s, r)
			}
		}
	})
}

func FuzzValidCountry(f *testing.F) {
	for _, s := range []string{"PL", "US", "UK", "pl", "", "P", "POL", "@A", "ZZ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cc string) {
		if !ValidCountry(cc) {
			return
		}
		if len(cc) != 2 || strings.ToUpper(cc) != cc || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' {
			t.Fatalf("accepted malformed %q", cc)
		}
		found := false
		for i := 0; i+1 < len(isoCountries); i += 3 {
			if isoCountries[i:i+2] == cc {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("accepted %q, which is not in the list", cc)
		}
	})
}
