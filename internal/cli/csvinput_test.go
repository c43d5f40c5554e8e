package cli

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func entryValues(in *userInput) []string {
	var out []string
	for _, e := range in.entries {
		out = append(out, firstNonEmpty(e.id, "upn:"+e.upn))
	}
	return out
}

func TestReadUserCSVAcceptedHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, csv string
		column    string
		want      []string
	}{
		{"id", "id\na\nb\n", "id", []string{"a", "b"}},
		{"UserId", "Name,UserId\nAnn,a\nBob,b\n", "UserId", []string{"a", "b"}},
		{"ObjectId", "ObjectId,Mail Nickname\n8f3c-1,ann\n", "ObjectId", []string{"8f3c-1"}},
		{"object id with spaces and case", "OBJECT ID\nx\n", "OBJECT ID", []string{"x"}},
		{"UserPrincipalName", "DisplayName,UserPrincipalName\nAnn,ann@contoso.com\n", "UserPrincipalName", []string{"upn:ann@contoso.com"}},
		{"user_principal_name", "user_principal_name\nann@contoso.com\n", "user_principal_name", []string{"upn:ann@contoso.com"}},
		{"email", "Email,Dept\nann@contoso.com,Sales\n", "Email", []string{"upn:ann@contoso.com"}},
		{"id wins over upn, upn fills in", "email,id\nann@x,a\nbob@x,\n", "id (else email)", []string{"a", "upn:bob@x"}},
		{"byte order mark", "\ufeffid\r\na\r\nb\r\n", "id", []string{"a", "b"}},
		{"byte order mark on upn header", "\ufeffUserPrincipalName,x\nann@x,1\n", "UserPrincipalName", []string{"upn:ann@x"}},
		{"semicolons", "Name;UserId\nAnn;a\n", "UserId", []string{"a"}},
		{"tabs", "Name\tid\nAnn\ta\n", "id", []string{"a"}},
		{"quoted fields", "\"Display, Name\",\"id\"\n\"Nowak, Anna\",\"a\"\n\"Line\nbreak\",\"b\"\n\"Quote \"\"q\"\"\",\"c\"\n", "id", []string{"a", "b", "c"}},
		{"surrounding spaces trimmed", "id\n  a  \n", "id", []string{"a"}},
		{"blank rows skipped", "id,name\na,x\n\n,\nb,y\n", "id", []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, err := readUserCSV(strings.NewReader(tt.csv), "test.csv")
			if err != nil {
				t.Fatal(err)
			}
			if in.column != tt.column {
				t.Errorf("column = %q, want %q", in.column, tt.column)
			}
			if got := entryValues(in); !slices.Equal(got, tt.want) {
				t.Errorf("entries = %q, want %q", got, tt.want)
			}
			if len(in.bad) > 0 || len(in.duplicates) > 0 {
				t.Errorf("bad %+v, duplicates %+v; want none", in.bad, in.duplicates)
			}
		})
	}
}

func TestReadUserCSVDuplicatesAndBadRows(t *testing.T) {
	t.Parallel()
	csv := strings.Join([]string{
		"id,name",                          // 1
		"a,Ann",                            // 2
		"b,Bob",                            // 3
		"a,Ann again",                      // 4 duplicate of 2
		",No ID",                           // 5 empty id
		"has/slash,Sp",                     // 6 invalid
		"x/y,Slash",                        // 7 invalid
		`"multi`,                           // 8 quoted field spanning lines 8-9
		`line",M`,                          // 9
		`c"d,Bare quote`,                   // 10 malformed
		"b,Bob again",                      // 11 duplicate of 3
		"short",                            // 12 good: the id is the first column
		strings.Repeat("z", 129) + ",Long", // 13 invalid
	}, "\n") + "\n"
	in, err := readUserCSV(strings.NewReader(csv), "t.csv")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := entryValues(in), []string{"a", "b", "short"}; !slices.Equal(got, want) {
		t.Errorf("entries = %q, want %q", got, want)
	}
	if in.rows != 11 {
		t.Errorf("rows = %d, want 11", in.rows)
	}
	var dups []string
	for _, d := range in.duplicates {
		dups = append(dups, fmt.Sprintf("%d=%d:%s", d.line, d.firstLine, d.value))
	}
	if want := []string{"4=2:a", "11=3:b"}; !slices.Equal(dups, want) {
		t.Errorf("duplicates = %q, want %q", dups, want)
	}
	badLines := map[int]string{}
	for _, b := range in.bad {
		badLines[b.line] = b.reason
	}
	for line, reason := range map[int]string{5: "empty id", 6: "not a valid ID", 7: "not a valid ID", 8: "not a valid ID", 10: "malformed CSV", 13: "not a valid ID"} {
		if !strings.Contains(badLines[line], reason) {
			t.Errorf("line %d: reason %q, want it to contain %q (bad rows: %+v)", line, badLines[line], reason, in.bad)
		}
	}
	if len(in.bad) != 6 {
		t.Errorf("%d bad rows, want 6: %+v", len(in.bad), in.bad)
	}
	var out strings.Builder
	in.printProblems(&out, 20)
	for _, want := range []string{"line 4: \"a\" repeats line 2", "line 5: empty id", "line 6: \"has/slash\": not a valid ID", "line 10: malformed CSV"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("problems listing lacks %q:\n%s", want, out.String())
		}
	}
}

func TestReadUserCSVUPNDuplicatesIgnoreCase(t *testing.T) {
	t.Parallel()
	in, err := readUserCSV(strings.NewReader("email\nAnn@Contoso.com\nann@contoso.COM\nnot an@email\n"), "t.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(in.entries) != 1 || len(in.duplicates) != 1 || in.duplicates[0].line != 3 || len(in.bad) != 1 || in.bad[0].line != 4 {
		t.Fatalf("entries %+v, duplicates %+v, bad %+v", in.entries, in.duplicates, in.bad)
	}
}

func TestReadUserCSVNeedsHeader(t *testing.T) {
	t.Parallel()
	for name, csv := range map[string]string{
		"no header":      "8f3c0000-0000-4000-8000-000000000001\n8f3c0000-0000-4000-8000-000000000002\n",
		"unknown header": "name,dept\nAnn,Sales\n",
		"empty":          "",
	} {
		_, err := readUserCSV(strings.NewReader(csv), "t.csv")
		if err == nil || !strings.Contains(err.Error(), "UserPrincipalName") {
			t.Errorf("%s: err = %v, want one naming the accepted headers", name, err)
		}
	}
}

func TestReadUsersFile(t *testing.T) {
	t.Parallel()
	file := "\ufeff# rollout wave 1\n\na\n  b  \n# c\na\nbad/id\n\nc\n"
	in, err := readUsersFile(strings.NewReader(file), "ids.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := entryValues(in), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("entries = %q, want %q", got, want)
	}
	if len(in.duplicates) != 1 || in.duplicates[0].line != 6 || in.duplicates[0].firstLine != 3 {
		t.Errorf("duplicates = %+v, want line 6 repeating line 3", in.duplicates)
	}
	if len(in.bad) != 1 || in.bad[0].line != 7 {
		t.Errorf("bad = %+v, want line 7", in.bad)
	}
}

// The reader streams: memory and time grow with distinct users, and
// 100,000 rows take milliseconds.
func BenchmarkReadUserCSV(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("id,display_name\n")
	for i := range 100_000 {
		fmt.Fprintf(&sb, "00000000-0000-4000-8000-%012d,User %d\n", i, i)
	}
	data := sb.String()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := readUserCSV(strings.NewReader(data), "b.csv"); err != nil {
			b.Fatal(err)
		}
	}
}
