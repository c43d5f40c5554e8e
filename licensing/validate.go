package licensing

import (
	"unicode"
	"unicode/utf8"
)

// MaxIDLength is the longest client-chosen ID, in characters (Unicode code
// points), as the contract states it: "1–128 printable characters without /".
const MaxIDLength = 128

// ValidID reports whether s is a valid client-chosen ID, exactly as the
// contract defines one: 1 to MaxIDLength characters of valid UTF-8, every one
// printable (unicode.IsPrint: letters, marks, numbers, punctuation, symbols
// and the ASCII space), and no '/', because IDs appear as URL path segments.
// The plain space is printable, so "Jan Kowalski" is a valid ID; tabs, line
// breaks, other control characters, and the invisible spaces (no-break,
// ideographic, zero-width) are not.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLength*utf8.UTFMax {
		return false
	}
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		// Invalid UTF-8 decodes to U+FFFD, which is printable, so it must
		// be caught before the IsPrint test.
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if r == '/' || !unicode.IsPrint(r) {
			return false
		}
		if n++; n > MaxIDLength {
			return false
		}
		i += size
	}
	return true
}

// ValidCountry reports whether cc is an officially assigned ISO 3166-1
// alpha-2 code, exactly as assigned: upper case, so "pl" and the
// reserved-but-not-assigned "UK" are refused. Usage locations are compared
// exactly elsewhere, so a code that only looks right would silently match no
// rule.
func ValidCountry(cc string) bool {
	if len(cc) != 2 {
		return false
	}
	a, b := cc[0]-'A', cc[1]-'A'
	if a >= 26 || b >= 26 { // bytes below 'A' wrap around to large values
		return false
	}
	i := int(a)*26 + int(b)
	return countryBits[i/64]&(1<<(i%64)) != 0
}

// isoCountries lists the 249 officially assigned ISO 3166-1 alpha-2 codes
// (the same set as tzdata's iso3166.tab). Reserved and user-assigned codes
// such as "UK", "EU" and "XK" are deliberately absent.
const isoCountries = "" +
	"AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ " +
	"BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ " +
	"CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ " +
	"DE DJ DK DM DO DZ " +
	"EC EE EG EH ER ES ET " +
	"FI FJ FK FM FO FR " +
	"GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY " +
	"HK HM HN HR HT HU " +
	"ID IE IL IM IN IO IQ IR IS IT " +
	"JE JM JO JP " +
	"KE KG KH KI KM KN KP KR KW KY KZ " +
	"LA LB LC LI LK LR LS LT LU LV LY " +
	"MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ " +
	"NA NC NE NF NG NI NL NO NP NR NU NZ " +
	"OM " +
	"PA PE PF PG PH PK PL PM PN PR PS PT PW PY " +
	"QA " +
	"RE RO RS RU RW " +
	"SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ " +
	"TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ " +
	"UA UG UM US UY UZ " +
	"VA VC VE VG VI VN VU " +
	"WF WS " +
	"YE YT " +
	"ZA ZM ZW"

// countryBits is a 26×26 bitset over "AA".."ZZ", built once so that
// ValidCountry is two bounds checks and a bit test, with no hashing.
var countryBits = func() (bits [(26*26 + 63) / 64]uint64) {
	for i := 0; i+1 < len(isoCountries); i += 3 {
		n := int(isoCountries[i]-'A')*26 + int(isoCountries[i+1]-'A')
		bits[n/64] |= 1 << (n % 64)
	}
	return bits
}()
