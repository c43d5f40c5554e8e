package cli

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/licenseops/licenseops/licensing"
)

// Header names accepted for the user column, compared after lower-casing
// and dropping spaces, '_' and '-' (so "User Principal Name",
// "user_principal_name" and "UserPrincipalName" are one name). An ID column
// wins over a UPN column; when a file has both, a row with an empty ID is
// looked up by its UPN.
var (
	idHeaders  = []string{"id", "userid", "objectid"}
	upnHeaders = []string{"userprincipalname", "upn", "email", "mail"}
)

// inputRow is one user of the input: an ID, or a UPN still to resolve.
type inputRow struct {
	line int
	id   string
	upn  string
}

// badRow is a row that cannot be sent, with the reason.
type badRow struct {
	line   int
	value  string
	reason string
}

// duplicateRow is a row naming a user an earlier row already named.
type duplicateRow struct {
	line, firstLine int
	value           string
}

// userInput is a validated selection of users read from a file.
type userInput struct {
	source string // "users.csv", "--all-users", …
	column string // the header used, as written in the file
	rows   int    // data rows read (blank rows not counted)
	// entries are the distinct users in input order; UPNs are resolved to IDs by resolve.
	entries    []inputRow
	bad        []badRow
	duplicates []duplicateRow
	// lineOf maps a user ID to the line that first named it (0 for --all-users).
	lineOf map[string]int
	// duplicatesShown is set once the duplicates were listed.
	duplicatesShown bool
}

func normalizeHeader(h string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '_' || r == '-' {
			return -1
		}
		return unicode.ToLower(r)
	}, strings.TrimSpace(h))
}

func newCSVReader(r io.Reader, comma rune) *csv.Reader {
	cr := csv.NewReader(r)
	cr.Comma = comma
	cr.FieldsPerRecord = -1 // short rows are bad rows, not a failed file
	cr.ReuseRecord = true
	return cr
}

// sniffDelimiter picks ';' or tab when the header line has no comma but
// one of those: spreadsheets in many locales save "CSV" with semicolons.
func sniffDelimiter(br *bufio.Reader) rune {
	peek, _ := br.Peek(64 << 10)
	if i := bytes.IndexByte(peek, '\n'); i >= 0 {
		peek = peek[:i]
	}
	switch {
	case bytes.IndexByte(peek, ',') >= 0:
		return ','
	case bytes.IndexByte(peek, ';') >= 0:
		return ';'
	case bytes.IndexByte(peek, '\t') >= 0:
		return '\t'
	}
	return ','
}

// readUserCSV reads a CSV of users with a header row, streaming: it keeps
// only the distinct users, the bad rows and the duplicates.
func readUserCSV(r io.Reader, source string) (*userInput, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	cr := newCSVReader(br, sniffDelimiter(br))
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s is empty; it needs a header row naming a user column (%s)", source, acceptedHeaders())
	}
	if err != nil {
		return nil, fmt.Errorf("%s: header: %w", source, err)
	}
	idCol, upnCol := -1, -1
	names := make([]string, len(header))
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // a byte order mark from Excel
		}
		names[i] = strings.TrimSpace(h)
		n := normalizeHeader(h)
		if p := indexOf(idHeaders, n); p >= 0 && (idCol < 0 || p < indexOf(idHeaders, normalizeHeader(names[idCol]))) {
			idCol = i
		}
		if p := indexOf(upnHeaders, n); p >= 0 && (upnCol < 0 || p < indexOf(upnHeaders, normalizeHeader(names[upnCol]))) {
			upnCol = i
		}
	}
	if idCol < 0 && upnCol < 0 {
		return nil, fmt.Errorf("%s: the header row (%s) names no user column; the first row must be a header with one of %s",
			source, strings.Join(names, ", "), acceptedHeaders())
	}
	in := &userInput{source: source, lineOf: map[string]int{}}
	switch {
	case idCol >= 0 && upnCol >= 0:
		in.column = names[idCol] + " (else " + names[upnCol] + ")"
	case idCol >= 0:
		in.column = names[idCol]
	default:
		in.column = names[upnCol]
	}
	seenUPN := map[string]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			// The reader resumes at the next record, so one broken row
			// does not hide the others.
			in.rows++
			in.bad = append(in.bad, badRow{line: pe.StartLine, reason: "malformed CSV: " + pe.Err.Error()})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		if blank(rec) {
			continue
		}
		in.rows++
		line, _ := cr.FieldPos(0)
		id, upn := cell(rec, idCol), cell(rec, upnCol)
		switch {
		case id != "":
			in.addID(id, line)
		case upn != "":
			if strings.ContainsFunc(upn, unicode.IsSpace) || len(upn) > 256 {
				in.bad = append(in.bad, badRow{line: line, value: upn, reason: "not a valid user principal name"})
				continue
			}
			k := strings.ToLower(upn)
			if first, dup := seenUPN[k]; dup {
				in.duplicates = append(in.duplicates, duplicateRow{line: line, firstLine: first, value: upn})
				continue
			}
			seenUPN[k] = line
			in.entries = append(in.entries, inputRow{line: line, upn: upn})
		default:
			what := "empty " + names[max(idCol, 0)]
			if idCol >= 0 && upnCol >= 0 {
				what = "empty " + names[idCol] + " and " + names[upnCol]
			} else if idCol < 0 {
				what = "empty " + names[upnCol]
			}
			in.bad = append(in.bad, badRow{line: line, reason: what})
		}
	}
	return in, nil
}

// readUsersFile reads one user ID per line; blank lines and lines starting
// with # are skipped.
func readUsersFile(r io.Reader, source string) (*userInput, error) {
	in := &userInput{source: source, column: "one ID per line", lineOf: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := sc.Text()
		if line == 1 {
			s = strings.TrimPrefix(s, "\ufeff")
		}
		s = strings.TrimSpace(s)
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		in.rows++
		in.addID(s, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return in, nil
}

// addID records a user ID read on line: bad, a duplicate, or a new user.
func (in *userInput) addID(id string, line int) {
	if !licensing.ValidID(id) {
		in.bad = append(in.bad, badRow{line: line, value: id,
			reason: fmt.Sprintf("not a valid ID (1–%d printable characters without '/')", licensing.MaxIDLength)})
		return
	}
	if first, dup := in.lineOf[id]; dup {
		in.duplicates = append(in.duplicates, duplicateRow{line: line, firstLine: first, value: id})
		return
	}
	in.lineOf[id] = line
	in.entries = append(in.entries, inputRow{line: line, id: id})
}

// allUsersInput selects every user of a directory.
func allUsersInput(d *directory) *userInput {
	in := &userInput{source: "--all-users", column: "every user of the customer", lineOf: make(map[string]int, len(d.order))}
	for _, u := range d.order {
		in.rows++
		in.addID(u.ID, 0)
	}
	return in
}

// upns counts the entries still to be resolved.
func (in *userInput) upns() int {
	n := 0
	for _, e := range in.entries {
		if e.id == "" {
			n++
		}
	}
	return n
}

// ids returns the distinct user IDs, in input order. Call after resolve.
func (in *userInput) ids() []string {
	out := make([]string, 0, len(in.entries))
	for _, e := range in.entries {
		out = append(out, e.id)
	}
	return out
}

// drop removes users from the selection, listing them as bad rows.
func (in *userInput) drop(ids []string, reason string) {
	gone := make(map[string]bool, len(ids))
	for _, id := range ids {
		gone[id] = true
	}
	kept := in.entries[:0]
	for _, e := range in.entries {
		if gone[e.id] {
			in.bad = append(in.bad, badRow{line: e.line, value: firstNonEmpty(e.upn, e.id), reason: reason})
			delete(in.lineOf, e.id)
			continue
		}
		kept = append(kept, e)
	}
	in.entries = kept
}

// printProblems lists bad rows and duplicates, at most max of each.
func (in *userInput) printProblems(w io.Writer, max int) {
	if len(in.duplicates) > 0 {
		fmt.Fprintf(w, "%s (each user counts once):\n", plural(len(in.duplicates), "duplicate row"))
		for i, d := range in.duplicates {
			if i == max {
				fmt.Fprintf(w, "  … and %d more\n", len(in.duplicates)-max)
				break
			}
			fmt.Fprintf(w, "  line %d: %q repeats line %d\n", d.line, d.value, d.firstLine)
		}
	}
	if len(in.bad) > 0 {
		fmt.Fprintf(w, "%s:\n", plural(len(in.bad), "bad row"))
		for i, b := range in.bad {
			if i == max {
				fmt.Fprintf(w, "  … and %d more\n", len(in.bad)-max)
				break
			}
			where := "  "
			if b.line > 0 {
				where = fmt.Sprintf("  line %d: ", b.line)
			}
			if b.value != "" {
				fmt.Fprintf(w, "%s%q: %s\n", where, b.value, b.reason)
			} else {
				fmt.Fprintf(w, "%s%s\n", where, b.reason)
			}
		}
	}
}

func acceptedHeaders() string {
	return "id, UserId, ObjectId, UserPrincipalName, user_principal_name or email"
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func cell(rec []string, i int) string {
	if i < 0 || i >= len(rec) {
		return ""
	}
	return strings.TrimSpace(rec[i])
}

func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
