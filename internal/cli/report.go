package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/licensing"
)

// An operation's report: its outcomes counted by code, read from the CSV
// the API streams.

// outcomes counts a report's rows by outcome (the error code of a failed
// user, else its status) and keeps the first few users of each failure.
type outcomes struct {
	rows     int
	counts   map[string]int
	examples map[string][]reportExample
	// kept counts the succeeded users that still hold a revoked license
	// through a group (the report's note), with the first note.
	kept     int
	keptNote reportExample
}

type reportExample struct{ user, message string }

const examplesPerCode = 3

func newOutcomes() *outcomes {
	return &outcomes{counts: map[string]int{}, examples: map[string][]reportExample{}}
}

func (o *outcomes) add(userID, upn, status, code, message string) {
	o.rows++
	key := status
	if code != "" {
		key = code
	}
	o.counts[key]++
	if code != "" && len(o.examples[key]) < examplesPerCode {
		who := userID
		if upn != "" {
			who = upn + " (" + userID + ")"
		}
		o.examples[key] = append(o.examples[key], reportExample{who, message})
	}
}

// addNote counts a succeeded user whose report row has a note: a revoked
// license it still holds through a group.
func (o *outcomes) addNote(userID, upn, note string) {
	if note == "" {
		return
	}
	if o.kept == 0 {
		who := userID
		if upn != "" {
			who = upn + " (" + userID + ")"
		}
		o.keptNote = reportExample{who, note}
	}
	o.kept++
}

func (o *outcomes) keys() []string {
	keys := make([]string, 0, len(o.counts))
	for k := range o.counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if o.counts[keys[i]] != o.counts[keys[j]] {
			return o.counts[keys[i]] > o.counts[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}

// print shows the counts by outcome with the first users of each failure
// code, then one example message per code.
func (o *outcomes) print(w io.Writer, title string) {
	fmt.Fprintf(w, "%s (%s):\n", title, plural(o.rows, "user"))
	tw := newTable(w)
	fmt.Fprintln(tw, "  OUTCOME\tUSERS\tFIRST USERS")
	for _, k := range o.keys() {
		var who []string
		for _, ex := range o.examples[k] {
			who = append(who, ex.user)
		}
		if n := o.counts[k]; n > len(who) && len(who) > 0 {
			who = append(who, "…")
		}
		// Every row has all three cells, so that the columns stay aligned
		// across a row without users (the table drops the trailing padding).
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", k, o.counts[k], strings.Join(who, ", "))
	}
	_ = tw.Flush()
	for _, k := range o.keys() {
		if ex := o.examples[k]; len(ex) > 0 {
			fmt.Fprintf(w, "  %s: %s\n", k, ex[0].message)
		}
	}
	if o.kept > 0 {
		fmt.Fprintf(w, "  still holding a revoked license through a group: %s (the report's note column); %s: %s\n",
			plural(o.kept, "user"), o.keptNote.user, o.keptNote.message)
	}
}

// readCSVReport streams an operation's CSV report through fn, row by row,
// copying the raw CSV to copyTo when it is not nil.
func readCSVReport(ctx context.Context, c *client.Client, opID string, copyTo io.Writer, fn func(col map[string]int, rec []string)) error {
	// One request: the CSV goes to copyTo as the API writes it, and
	// through a pipe to the reader here.
	pr, pw := io.Pipe()
	defer pr.Close() // stops the copy when reading stops early
	go func() {
		var w io.Writer = pw
		if copyTo != nil {
			w = io.MultiWriter(copyTo, pw)
		}
		pw.CloseWithError(c.ReportCSV(ctx, opID, w))
	}()
	cr := newCSVReader(pr, ',')
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("read the report: %w", err)
	}
	col := make(map[string]int, len(header))
	for i, h := range header {
		col[h] = i
	}
	for _, need := range []string{"user_id", "status", "error_code"} {
		if _, ok := col[need]; !ok {
			return fmt.Errorf("the report has no %s column", need)
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the report: %w", err)
		}
		fn(col, rec)
	}
}

// field returns rec's value of a named column, or "".
func field(col map[string]int, rec []string, name string) string {
	if i, ok := col[name]; ok && i < len(rec) {
		return rec[i]
	}
	return ""
}

// collectOutcomes reads the report of a finished operation into outcomes,
// and writes the CSV to reportPath when it is set.
func collectOutcomes(ctx context.Context, c *client.Client, opID, reportPath string) (*outcomes, error) {
	var file *os.File
	var copyTo io.Writer
	if reportPath != "" {
		f, err := os.Create(reportPath) // #nosec G304 -- the operator names the report file on the command line
		if err != nil {
			return nil, err
		}
		file, copyTo = f, f
	}
	o := newOutcomes()
	err := readCSVReport(ctx, c, opID, copyTo, func(col map[string]int, rec []string) {
		o.add(field(col, rec, "user_id"), field(col, rec, "user_principal_name"), field(col, rec, "status"),
			field(col, rec, "error_code"), field(col, rec, "error_message"))
		o.addNote(field(col, rec, "user_id"), field(col, rec, "user_principal_name"), field(col, rec, "note"))
	})
	if file != nil {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
	}
	return o, err
}

// finishOperation prints the outcome summary of a finished operation and
// writes the report when reportPath is set. It returns a PartialError when
// some users failed.
func finishOperation(ctx context.Context, c *client.Client, op licensing.Operation, reportPath string, stdout io.Writer) error {
	if op.Cancelled > 0 {
		fmt.Fprintf(stdout, "Operation %s %s: %d succeeded, %d failed, %d cancelled of %d.\n", op.ID, op.Status, op.Succeeded, op.Failed, op.Cancelled, op.Total)
	} else {
		fmt.Fprintf(stdout, "Operation %s %s: %d succeeded, %d failed of %d.\n", op.ID, op.Status, op.Succeeded, op.Failed, op.Total)
	}
	o, err := collectOutcomes(ctx, c, op.ID, reportPath)
	if errors.Is(err, context.Canceled) {
		return &DetachedError{OperationID: op.ID, While: "reading the report"}
	}
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	o.print(stdout, "Outcomes")
	if reportPath != "" {
		fmt.Fprintf(stdout, "Report written to %s (%s).\n", reportPath, plural(o.rows, "row"))
	} else {
		fmt.Fprintf(stdout, "Full report: licenseops operation report %s --csv report.csv\n", op.ID)
	}
	if op.Status == client.StatusCancelled {
		return &PartialError{Msg: fmt.Sprintf("operation %s was cancelled: %s of %d not changed", op.ID, plural(op.Cancelled, "user"), op.Total)}
	}
	if op.Failed > 0 || op.Status == "completed_with_errors" {
		return &PartialError{Msg: fmt.Sprintf("operation %s finished with %s of %d failed", op.ID, plural(op.Failed, "user"), op.Total)}
	}
	return nil
}
