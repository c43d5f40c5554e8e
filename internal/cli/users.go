package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/licenseops/licenseops/client"
)

var usersListCommand = &Command{
	Name: "users list", Args: "--customer C [--q TEXT] [--page N] [--page-size N]", Group: GroupClient,
	Summary: "list a customer's users with their licenses",
	Help: `Lists a customer's users sorted by display name, with their usage location,
account state and licenses. --q keeps the users whose display name or user
principal name contains TEXT (ignoring case).
`,
	New: func() Runner { return &usersListCmd{} },
}

// usersListCmd is `licenseops users list`.
type usersListCmd struct {
	conn        connFlags
	customer, q string
	page, size  int
}

func (u *usersListCmd) Flags(fs *flag.FlagSet, env *Env) {
	u.conn.bind(fs, env)
	fs.StringVar(&u.customer, "customer", "", "customer (tenant) ID (required)")
	fs.StringVar(&u.q, "q", "", "only users whose display name or user principal name contains this")
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
	p, err := u.conn.client().ListUsers(ctx, u.customer, client.UserListOptions{Page: u.page, PageSize: u.size, Query: u.q})
	if err != nil {
		return interrupted(err)
	}
	tw := newTable(env.Stdout)
	fmt.Fprintln(tw, "ID\tUSER PRINCIPAL NAME\tDISPLAY NAME\tLOCATION\tENABLED\tLICENSES")
	for _, usr := range p.Users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", usr.ID, usr.UserPrincipalName, usr.DisplayName, dash(deref(usr.UsageLocation)),
			yesNo(usr.AccountEnabled), dash(strings.Join(usr.Licenses, ",")))
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
