package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/licensing"
)

var usersListCommand = &Command{
	Name: "users list", Args: "--customer C [--q TEXT] [--license-errors] [--page N] [--page-size N]", Group: GroupClient,
	Summary: "list a customer's users with their licenses",
	Help: `Lists a customer's users sorted by display name, with their usage location,
account state and licenses. --q keeps the users whose display name or user
principal name contains TEXT (ignoring case).

For Microsoft Graph customers, a license inherited from a group shows the
group, by name when known: E3(group Sales) when held only through group
Sales, E3(direct+group Sales) when held both ways. --license-errors keeps the users with a group
licensing error as of the last sync, and shows the errors.
`,
	New: func() Runner { return &usersListCmd{} },
}

// usersListCmd is `licenseops users list`.
type usersListCmd struct {
	conn        connFlags
	customer, q string
	page, size  int
	errors      bool
}

func (u *usersListCmd) Flags(fs *flag.FlagSet, env *Env) {
	u.conn.bind(fs, env)
	fs.StringVar(&u.customer, "customer", "", "customer (tenant) ID (required)")
	fs.StringVar(&u.q, "q", "", "only users whose display name or user principal name contains this")
	fs.BoolVar(&u.errors, "license-errors", false, "only users with a group licensing error, with the errors")
	fs.IntVar(&u.page, "page", 1, "page number")
	fs.IntVar(&u.size, "page-size", 50, "users per page (1–500)")
}

func (u *usersListCmd) Validate(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	if u.customer == "" {
		return errors.New("--customer is required")
	}
	return u.conn.validate()
}

func (u *usersListCmd) Run(ctx context.Context, env *Env) error {
	p, err := u.conn.client().ListUsers(ctx, u.customer, client.UserListOptions{Page: u.page, PageSize: u.size, Query: u.q, LicenseErrors: u.errors})
	if err != nil {
		return interrupted(err)
	}
	tw := newTable(env.Stdout)
	head := "ID\tUSER PRINCIPAL NAME\tDISPLAY NAME\tLOCATION\tENABLED\tLICENSES"
	if u.errors {
		head += "\tLICENSE ERRORS"
	}
	fmt.Fprintln(tw, head)
	for _, usr := range p.Users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s", usr.ID, usr.UserPrincipalName, usr.DisplayName, dash(deref(usr.UsageLocation)),
			yesNo(usr.AccountEnabled), dash(licensesCell(usr)))
		if u.errors {
			fmt.Fprintf(tw, "\t%s", dash(licenseErrorsCell(usr.LicenseErrors)))
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
	printPageFooter(env.Stdout, p.Page, p.TotalPages, plural(p.Total, "user"))
	return nil
}

func printPageFooter(w io.Writer, page, pages int, total string) {
	fmt.Fprintf(w, "page %d of %d (%s)", page, pages, total)
	if page < pages {
		fmt.Fprintf(w, "; next: --page %d", page+1)
	}
	fmt.Fprintln(w)
}

// licensesCell lists a user's licenses, marking those inherited from groups.
func licensesCell(u licensing.User) string {
	if u.LicenseSources == nil {
		return strings.Join(u.Licenses, ",")
	}
	parts := make([]string, len(u.LicenseSources))
	for i, s := range u.LicenseSources {
		parts[i] = s.SKU
		switch {
		case s.Inherited() && s.Direct:
			parts[i] += "(direct+group " + groupsCell(s) + ")"
		case s.Inherited():
			parts[i] += "(group " + groupsCell(s) + ")"
		}
	}
	return strings.Join(parts, ",")
}

// licenseErrorsCell lists group licensing errors as "E5: CountViolation (group g1)".
func licenseErrorsCell(errs []licensing.LicenseError) string {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = fmt.Sprintf("%s: %s (group %s)", e.SKU, e.Error, e.GroupID)
	}
	return strings.Join(parts, "; ")
}

// groupsCell names the groups of a license, by display name when known.
func groupsCell(s licensing.LicenseSource) string {
	names := make([]string, len(s.InheritedFrom))
	for i, id := range s.InheritedFrom {
		names[i] = id
		if i < len(s.GroupNames) && s.GroupNames[i] != "" {
			names[i] = s.GroupNames[i]
		}
	}
	return strings.Join(names, " ")
}
