package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/licensing"
)

// Exit statuses. Scripts branch on them, so they never change meaning.
const (
	ExitOK       = 0   // done; for a rollout: every user succeeded
	ExitError    = 1   // bad input, API error, I/O error
	ExitUsage    = 2   // wrong flags or arguments
	ExitPartial  = 3   // the operation finished, but some users failed (or, in a dry run, would fail)
	ExitDetached = 130 // Ctrl-C while watching: the operation keeps running
)

// UsageError is wrong flags or arguments: exit status 2, printed with the
// command's synopsis and where to find its help.
type UsageError struct {
	Err error
	// top: print the top-level usage after it (an unknown command).
	top bool
	// group: the commands of a group named without a subcommand.
	group []*Command
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// usagef returns a UsageError with a formatted message.
func usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// PartialError is an operation that finished with some users failed, or a
// dry run in which some would fail: exit status 3.
type PartialError struct{ Msg string }

func (e *PartialError) Error() string { return e.Msg }

// DetachedError is a command that stopped waiting for an operation (Ctrl-C)
// while the operation goes on on the server: exit status 130. Without an
// operation ID it is a plain interruption.
type DetachedError struct {
	OperationID string
	// While says what was interrupted: "watching", "reading the report".
	While string
}

func (e *DetachedError) Error() string {
	switch {
	case e.OperationID == "":
		return "interrupted"
	case e.While == "reading the report":
		return fmt.Sprintf("interrupted while reading the report; get it with: licenseops operation report %s --csv FILE", e.OperationID)
	}
	return fmt.Sprintf("detached: operation %s goes on running on the server; nothing was cancelled.\nReattach with:\n  licenseops operation watch %s",
		e.OperationID, e.OperationID)
}

// helpShown is returned for `licenseops GROUP -h`: the group's help, exit 0.
type helpShown struct{ group []*Command }

func (*helpShown) Error() string { return "help" }

// hintError adds lines that say what to do to an error.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// withHint returns err followed, when printed, by hint on a line of its own.
func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hintError{err: err, hint: hint}
}

// ExitCode is the exit status of a command that returned err.
func ExitCode(err error) int {
	var ue *UsageError
	var pe *PartialError
	var de *DetachedError
	var hs *helpShown
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp), errors.As(err, &hs):
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &pe):
		return ExitPartial
	case errors.As(err, &de):
		return ExitDetached
	}
	return ExitError
}

// report prints err, when there is one, and returns the exit status.
// name is the command's name ("" before a command was found).
func report(env *Env, cmd *Command, name string, err error) int {
	code := ExitCode(err)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return code
	}
	var hs *helpShown
	if errors.As(err, &hs) {
		printGroupHelp(env.Stdout, hs.group)
		return code
	}
	prefix := "licenseops"
	if name != "" {
		prefix += " " + name
	}
	var ue *UsageError
	if errors.As(err, &ue) && ue.group != nil {
		prefix += " " + strings.Fields(ue.group[0].Name)[0]
	}
	printError(env.Stderr, prefix, err)
	if ue != nil {
		switch {
		case ue.top:
			fmt.Fprintf(env.Stderr, "\n%s", topUsage(env.commands))
		case ue.group != nil:
			fmt.Fprintln(env.Stderr)
			printGroupHelp(env.Stderr, ue.group)
		case cmd != nil:
			fmt.Fprintf(env.Stderr, "\nUsage:\n  %s\nRun 'licenseops %s -h' for help.\n", cmd.synopsis(), cmd.Name)
		}
	}
	return code
}

// printError shows an error the way a person can act on: the message of an
// API error or of a licensing.Error with, for the codes that have them,
// its details; then the hints wrapped around it.
func printError(w io.Writer, prefix string, err error) {
	var hints []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		if h, ok := e.(*hintError); ok {
			hints = append(hints, h.hint)
		}
	}
	var ae *client.Error
	var le *licensing.Error
	var ue *url.Error // what http.Client returns when no answer came
	switch {
	case errors.As(err, &ae):
		fmt.Fprintf(w, "%s: %s\n", prefix, apiErrorText(err, ae))
		printDetails(w, ae)
		if ae.Code == client.CodeUnauthenticated {
			hints = append(hints, "  set LICENSEOPS_TOKEN or --token to a token from `licenseops token create`")
		}
	case errors.As(err, &le):
		// Its message is written for people and says what to do; what
		// wraps it (a URL, a step) adds nothing they need.
		fmt.Fprintf(w, "%s: %s\n", prefix, le.Message)
		if le.Details != nil {
			if b, jerr := json.Marshal(le.Details); jerr == nil {
				printDetails(w, &client.Error{Code: string(le.Code), Details: b})
			}
		}
	case errors.As(err, &ue):
		fmt.Fprintf(w, "%s: cannot reach the API: %v (set LICENSEOPS_URL or --url)\n", prefix, err)
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(w, "%s: interrupted\n", prefix)
	default:
		fmt.Fprintf(w, "%s: %v\n", prefix, err)
	}
	for _, h := range hints {
		fmt.Fprintln(w, h)
	}
}

// apiErrorText is err, which is or wraps the API error ae, as one line:
// what wraps it, then "Code (HTTP status): message".
func apiErrorText(err error, ae *client.Error) string {
	own := ae.Error()
	if ae.Code != "" {
		own = fmt.Sprintf("%s (HTTP %d): %s", ae.Code, ae.StatusCode, ae.Message)
	}
	outer, inner := err.Error(), ae.Error()
	if strings.HasSuffix(outer, inner) {
		return strings.TrimSuffix(outer, inner) + own
	}
	return own
}

// printDetails shows the details of the codes that have useful ones: the
// seats of a CountViolation, the IDs of UnknownUsers and UnknownSkus.
func printDetails(w io.Writer, e *client.Error) {
	if len(e.Details) == 0 {
		return
	}
	switch e.Code {
	case client.CodeCountViolation:
		var d client.CountViolationDetails
		if e.DecodeDetails(&d) == nil && len(d.SKUs) > 0 {
			tw := newTable(w)
			fmt.Fprintln(tw, "  SKU\tNEEDED\tAVAILABLE\tSHORT\tBUY MORE")
			for _, s := range d.SKUs {
				fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\n", s.SKU, s.Needed, s.Available, s.Needed-s.Available, dash(s.BuyMoreURL))
			}
			_ = tw.Flush()
		}
	case client.CodeUnknownUsers:
		var d client.UnknownUsersDetails
		if e.DecodeDetails(&d) == nil {
			printIDs(w, "unknown users", d.UserIDs, d.Count)
		}
	case client.CodeUnknownSkus:
		var d client.UnknownSkusDetails
		if e.DecodeDetails(&d) == nil {
			printIDs(w, "unknown SKUs", d.SKUIDs, len(d.SKUIDs))
		}
	}
}

// printIDs lists the IDs an error's details name, of count in all.
func printIDs(w io.Writer, what string, ids []string, count int) {
	if len(ids) > 0 {
		fmt.Fprintf(w, "  %s: %s\n", what, strings.Join(ids, ", "))
	}
	if count > len(ids) {
		fmt.Fprintf(w, "  … and %d more\n", count-len(ids))
	}
}

// newTable returns a tab-aligned table writer on w. Every row of a table
// should have the same number of cells, ending in a tab-free last cell;
// an empty last cell leaves no trailing spaces.
func newTable(w io.Writer) *table {
	t := &trimWriter{w: w}
	return &table{Writer: tabwriter.NewWriter(t, 0, 4, 2, ' ', 0), trim: t}
}

// table is a tabwriter whose lines end without padding.
type table struct {
	*tabwriter.Writer
	trim *trimWriter
}

// Flush writes the table.
func (t *table) Flush() error {
	err := t.Writer.Flush()
	if len(t.trim.pending) > 0 {
		_, werr := t.trim.w.Write(bytes.TrimRight(t.trim.pending, " "))
		t.trim.pending = nil
		err = errors.Join(err, werr)
	}
	return err
}

// trimWriter drops the spaces at the end of each line written to it
// (the padding of an empty last cell).
type trimWriter struct {
	w       io.Writer
	pending []byte
}

func (t *trimWriter) Write(p []byte) (int, error) {
	t.pending = append(t.pending, p...)
	for {
		i := bytes.IndexByte(t.pending, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimRight(t.pending[:i], " ")
		if _, err := t.w.Write(append(line, '\n')); err != nil {
			return 0, err
		}
		t.pending = t.pending[i+1:]
	}
	return len(p), nil
}

// plural is "1 row", "2 rows", or with the plural given, "1 does", "2 do".
func plural(n int, singular string, pluralForm ...string) string {
	if n == 1 {
		return "1 " + singular
	}
	if len(pluralForm) > 0 {
		return fmt.Sprintf("%d %s", n, pluralForm[0])
	}
	return fmt.Sprintf("%d %ss", n, singular)
}

// orList is "a", "a or b", "a, b or c".
func orList(s []string) string {
	if len(s) <= 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func round(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Millisecond)
}

func countTrue(b ...bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}
