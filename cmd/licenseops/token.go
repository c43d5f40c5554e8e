package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

func runToken(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: licenseops token create|list|revoke")
		return errUsage
	}
	cfg := loadConfig()
	fs := flag.NewFlagSet("token "+args[0], flag.ContinueOnError)
	partner := fs.String("partner", "", "partner ID the token belongs to")
	role := fs.String("role", "", "role of the token: "+strings.Join(licensing.Roles(), ", "))
	name := fs.String("name", "", "a name for the token, shown in audit and operations (default: ROLE-TIMESTAMP)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	store, err := storage.Open(ctx, storage.Config{URL: cfg.DatabaseURL, MaxOpenConns: 2})
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.CheckMigrated(ctx); err != nil {
		return err
	}
	switch args[0] {
	case "create":
		if !licensing.ValidID(*partner) {
			return fmt.Errorf("%w: --partner is required (1–128 printable characters without '/')", errUsage)
		}
		if !licensing.ValidRole(*role) {
			return fmt.Errorf("%w: --role must be one of %s", errUsage, strings.Join(licensing.Roles(), ", "))
		}
		n := *name
		if n == "" {
			n = *role + "-" + time.Now().UTC().Format("20060102T150405Z")
		}
		secret, err := store.CreateToken(ctx, *partner, n, *role)
		if err != nil {
			return err
		}
		fmt.Println(secret)
		fmt.Fprintf(os.Stderr, "token %q (%s) created for partner %s; it is shown only once\n", n, *role, *partner)
		return nil
	case "list":
		tokens, err := store.ListTokens(ctx, *partner)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPARTNER\tNAME\tROLE\tCREATED\tLAST USED\tREVOKED")
		for _, t := range tokens {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.PartnerID, t.Name, t.Role,
				t.CreatedAt.UTC().Format(time.RFC3339), fmtTime(t.LastUsedAt), fmtTime(t.RevokedAt))
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: usage: licenseops token revoke ID", errUsage)
		}
		id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: token ID must be a number (see licenseops token list)", errUsage)
		}
		if err := store.RevokeToken(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "token %d revoked; the API refuses it from now on\n", id)
		return nil
	default:
		return fmt.Errorf("%w: unknown token command %q", errUsage, args[0])
	}
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
