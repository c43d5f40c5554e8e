package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

var tokenCommands = []*Command{
	{Name: "token create", Args: "--partner P --role R [--name N]", Group: GroupServer,
		Summary: "create an API token; prints the token alone",
		Help:    "Creates an API token of a partner with a role (" + strings.Join(licensing.Roles(), ", ") + ").\nThe token is printed alone on standard output, and only once.\n",
		New:     func() Runner { return &tokenCmd{sub: "create"} }},
	{Name: "token list", Args: "[--partner P]", Group: GroupServer,
		Summary: "list tokens",
		New:     func() Runner { return &tokenCmd{sub: "list"} }},
	{Name: "token revoke", Args: "ID", Group: GroupServer,
		Summary: "revoke a token (its ID from token list)",
		New:     func() Runner { return &tokenCmd{sub: "revoke"} }},
}

// tokenCmd is `licenseops token create|list|revoke`.
type tokenCmd struct {
	serverConfig
	sub                 string
	partner, role, name string
	revokeID            int64
}

func (t *tokenCmd) Flags(fs *flag.FlagSet, env *Env) {
	t.load(env)
	switch t.sub {
	case "create":
		fs.StringVar(&t.partner, "partner", "", "partner ID the token belongs to")
		fs.StringVar(&t.role, "role", "", "role of the token: "+strings.Join(licensing.Roles(), ", "))
		fs.StringVar(&t.name, "name", "", "a name for the token, shown in audit and operations (default: ROLE-TIMESTAMP)")
	case "list":
		fs.StringVar(&t.partner, "partner", "", "list only the tokens of this partner")
	}
}

func (t *tokenCmd) Validate(args []string) error {
	switch t.sub {
	case "create":
		if !licensing.ValidID(t.partner) {
			return errors.New("--partner is required (1–128 printable characters without '/')")
		}
		if !licensing.ValidRole(t.role) {
			return fmt.Errorf("--role must be one of %s", strings.Join(licensing.Roles(), ", "))
		}
	case "revoke":
		if len(args) != 1 {
			return errors.New("give one token ID")
		}
		id, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil {
			return fmt.Errorf("token ID %q is not a number (see licenseops token list)", args[0])
		}
		t.revokeID = id
		return nil
	}
	return noArgs(args)
}

func (t *tokenCmd) Run(ctx context.Context, env *Env) error {
	if t.err != nil {
		return t.err
	}
	store, err := storage.Open(ctx, storage.Config{URL: t.cfg.DatabaseURL, MaxOpenConns: 2})
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.CheckMigrated(ctx); err != nil {
		return err
	}
	switch t.sub {
	case "create":
		name := t.name
		if name == "" {
			name = t.role + "-" + time.Now().UTC().Format("20060102T150405Z")
		}
		secret, err := store.CreateToken(ctx, t.partner, name, t.role)
		if err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, secret)
		fmt.Fprintf(env.Stderr, "token %q (%s) created for partner %s; it is shown only once\n", name, t.role, t.partner)
		return nil
	case "list":
		tokens, err := store.ListTokens(ctx, t.partner)
		if err != nil {
			return err
		}
		tw := newTable(env.Stdout)
		fmt.Fprintln(tw, "ID\tPARTNER\tNAME\tROLE\tCREATED\tLAST USED\tREVOKED")
		for _, tok := range tokens {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", tok.ID, tok.PartnerID, tok.Name, tok.Role,
				tok.CreatedAt.UTC().Format(time.RFC3339), fmtTime(tok.LastUsedAt), fmtTime(tok.RevokedAt))
		}
		return tw.Flush()
	default:
		if err := store.RevokeToken(ctx, t.revokeID); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "token %d revoked; the API refuses it from now on\n", t.revokeID)
		return nil
	}
}
