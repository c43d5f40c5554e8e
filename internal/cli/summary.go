package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
)

var summaryCommand = &Command{
	Name: "summary", Args: "--customer C (--csv FILE | --users-file FILE | USER_ID...)", Group: GroupClient,
	Summary: "which of the selected users hold which licenses, and the seats",
	Help: `The Manage-licenses view of a selection: for every subscription of the
customer, whether all, some or none of the selected users hold it, and the
seats. --csv and --users-file read users as rollout does (see
licenseops rollout -h).
`,
	New: func() Runner { return &summaryCmd{} },
}

// summaryCmd is `licenseops summary`.
type summaryCmd struct {
	conn                         connFlags
	customer, csvPath, usersFile string
	skipBad                      bool
	ids                          []string
}

func (s *summaryCmd) Flags(fs *flag.FlagSet, env *Env) {
	s.conn.bind(fs, env)
	fs.StringVar(&s.customer, "customer", "", "customer (tenant) ID (required)")
	fs.StringVar(&s.csvPath, "csv", "", "CSV `file` of users")
	fs.StringVar(&s.usersFile, "users-file", "", "`file` of user IDs, one per line")
	fs.BoolVar(&s.skipBad, "skip-bad-rows", false, "summarize the good rows even when some rows are bad")
}

func (s *summaryCmd) Validate(args []string) error {
	s.ids = args
	if s.customer == "" {
		return errors.New("--customer is required")
	}
	if countTrue(s.csvPath != "", s.usersFile != "", len(args) > 0) != 1 {
		return errors.New("give exactly one of --csv, --users-file and user IDs")
	}
	return s.conn.validate()
}

func (s *summaryCmd) Run(ctx context.Context, env *Env) error {
	c := s.conn.client()
	if _, err := checkCustomer(ctx, c, s.customer, nil); err != nil {
		return interrupted(err)
	}
	in, _, err := readSelection(ctx, c, env.Stdin, s.customer, s.csvPath, s.usersFile, false, s.ids)
	if err != nil {
		return interrupted(err)
	}
	if in.source != "arguments" || len(in.bad) > 0 || len(in.duplicates) > 0 {
		printInputSummary(env.Stdout, in, 0)
	}
	if err := checkProblems(env.Stdout, env.Stderr, in, s.skipBad); err != nil {
		return err
	}
	if len(in.entries) == 0 {
		return errors.New("no users selected")
	}
	sum, err := c.LicenseSummary(ctx, s.customer, in.ids())
	if err != nil {
		return interrupted(err)
	}
	fmt.Fprintf(env.Stdout, "%s selected in customer %s.\n", plural(len(sum.Users), "user"), s.customer)
	tw := newTable(env.Stdout)
	fmt.Fprintln(tw, "SKU\tNAME\tSTATE\tHOLDERS\tTOTAL\tAVAILABLE\tBUY MORE")
	for _, p := range sum.Products {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", p.SKU, p.Name, p.State,
			strconv.Itoa(len(p.AssignedUserIDs))+"/"+strconv.Itoa(len(sum.Users)), p.Total, p.Available, dash(deref(p.BuyMoreURL)))
	}
	return tw.Flush()
}
