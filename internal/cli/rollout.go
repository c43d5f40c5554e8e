package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/licensing"
)

var rolloutCommand = &Command{
	Name: "rollout",
	Args: `--customer C (--csv FILE | --users-file FILE | --all-users)
                     ([--assign SKU]... [--revoke SKU]... [--replace FROM:TO]...
                      [--disable-plan SKU:PLAN]... | --copy-from USER [--exact])
                     [--usage-location CC] [--allow-partial]
                     [--dry-run] [--wait] [--report FILE.csv] [--skip-bad-rows]
                     [--not-before TIME]`,
	Summary: "assign/revoke licenses for the users of a CSV, a file of IDs or the whole customer",
	Group:   GroupClient,
	Help: `Assigns and revokes licenses for many users in one license operation, through
the HTTP API (LICENSEOPS_URL, default ` + defaultAPIURL + `, and LICENSEOPS_TOKEN).

Input:
  --csv FILE         a CSV file with a header row. The user column is the first of
                     id, UserId, ObjectId (user IDs) or UserPrincipalName,
                     user_principal_name, email (looked up through the API, ignoring
                     case); header names ignore case, spaces, '_' and '-'. A byte order
                     mark, quoted fields and ';' or tab separators are fine.
  --users-file FILE  one user ID per line; blank lines and lines starting with # are skipped.
  --all-users        every user of the customer.
  FILE may be - for standard input. A user named twice counts once (the repeats are
  listed). Bad rows (empty ID, invalid ID, unknown user principal name, unknown user)
  are listed with their line numbers and nothing is sent, unless --skip-bad-rows.

Change:
  --assign and --revoke take one SKU each and can be repeated; a comma-separated list
  (--assign E3,E5) is split into its SKUs. The customer and its subscriptions are
  checked before the input is read: a SKU the customer has no subscription for is
  named, with the customer's SKU it matches ignoring case, and its SKUs.
  --replace FROM:TO takes FROM from every selected user who holds it and assigns TO
  instead, all or nothing; users without FROM are left as they are (and succeed).
  It can be repeated (--replace E3:E5 --replace E1:E5) and combined with --assign and
  --revoke, which may not name its SKUs.
  --copy-from USER gives every selected user the licenses USER holds when the rollout
  is sent, with the service plans USER has off in them; --exact also takes away, from
  each user, the licenses USER lacks. It goes without --assign, --revoke, --replace
  and --disable-plan.
  --disable-plan SKU:PLAN switches the service plan PLAN of SKU off (repeatable;
  SKU is one of --assign or a --replace's TO): users who get SKU get it with the
  plan off, users who hold it have their plans updated (no seat taken). The plan
  IDs are the product's service_plans. --disable-plan SKU: (no plan) switches
  every plan of SKU on.

Progress:
  --wait waits for the operation to finish; it is the default when standard output is
  a terminal, where progress is a bar (done/total, rate, time left, failures so far).
  Elsewhere progress is a plain line every --progress-interval:
    progress: 1200/5000 done, 3 failed, 950 users/s
  When no user is done for 15 seconds, a warning says that no worker may be running.
  Without --wait on a non-terminal, the command prints the operation ID and returns once
  the operation is queued. --report implies --wait. Ctrl-C while waiting detaches and
  cancels nothing; reattach with: licenseops operation watch OP

Schedule:
  --not-before TIME schedules the rollout: it starts at TIME (RFC 3339, for example
  2026-12-12T22:00:00Z or 2026-12-12T23:00:00+01:00), on whichever worker runs then.
  Seats are checked now and taken when it starts. The command returns once it is
  scheduled; cancel it with: licenseops operation cancel OP. --wait and --report
  do not go with it; watch it later with: licenseops operation watch OP.

Dry run:
  --dry-run queues nothing: the API checks the change as it would check the rollout and
  predicts each user's outcome with the workers' rules. It shows per SKU how many selected
  users would newly get it or lose it, seats needed against available (with the buy-more
  link when short), and the outcomes (counted by code, first users of each). When seats are
  short without --allow-partial, the rollout would be refused; the outcomes shown are then
  those it would have with --allow-partial.

Exit status:
  0    every user succeeded (dry run: every user would succeed); or queued, when not waiting
  1    error: bad input, bad rows, an API error (shown with its code and message); nothing
       was queued unless the error came after "Queued operation"
  2    usage: wrong flags or arguments
  3    the operation finished but some users failed (dry run: some would fail, or seats are
       short); see the outcomes and the report
  130  interrupted: Ctrl-C while waiting; the operation goes on
`,
	New: func() Runner { return &rolloutCmd{} },
}

// rolloutCmd is the options of `licenseops rollout`.
type rolloutCmd struct {
	conn                         connFlags
	customer, csvPath, usersFile string
	allUsers                     bool
	assign, revoke               skuList
	replace                      replaceList
	disabledPlans                planList
	copyFrom                     string
	exact                        bool
	location                     string
	allowPartial, dryRun         bool
	wait                         optionalBool
	report                       string
	skipBad                      bool
	lineEvery                    time.Duration
	notBeforeText                string
	notBefore                    *time.Time
}

func (r *rolloutCmd) Flags(fs *flag.FlagSet, env *Env) {
	r.conn.bind(fs, env)
	fs.StringVar(&r.customer, "customer", "", "customer (tenant) ID (required)")
	fs.StringVar(&r.csvPath, "csv", "", "CSV `file` of users")
	fs.StringVar(&r.usersFile, "users-file", "", "`file` of user IDs, one per line")
	fs.BoolVar(&r.allUsers, "all-users", false, "select every user of the customer")
	fs.Var(&r.assign, "assign", "`SKU` to assign (repeatable; A,B is split into A and B)")
	fs.Var(&r.revoke, "revoke", "`SKU` to revoke (repeatable; A,B is split into A and B)")
	fs.Var(&r.replace, "replace", "replace `FROM:TO` for the users who hold FROM (repeatable)")
	fs.Var(&r.disabledPlans, "disable-plan", "switch the service plan off: `SKU:PLAN` (repeatable; SKU: turns every plan of SKU on)")
	fs.StringVar(&r.copyFrom, "copy-from", "", "give the users the licenses this `user` holds")
	fs.BoolVar(&r.exact, "exact", false, "with --copy-from, also take away the licenses the user lacks")
	fs.StringVar(&r.location, "usage-location", "", "set this usage location (ISO 3166-1 alpha-2, e.g. PL) on every user")
	fs.BoolVar(&r.allowPartial, "allow-partial", false, "when seats are short, assign those there are; the users without a seat fail with CountViolation")
	fs.BoolVar(&r.dryRun, "dry-run", false, "show what would change and what would fail (the API's dry run); queue nothing")
	fs.Var(&r.wait, "wait", "wait for the operation to finish (default: when stdout is a terminal)")
	fs.StringVar(&r.report, "report", "", "write the confirmation report to this CSV `file` (implies --wait)")
	fs.BoolVar(&r.skipBad, "skip-bad-rows", false, "send the good rows even when some rows are bad")
	fs.StringVar(&r.notBeforeText, "not-before", "", "schedule the rollout to start at this `time` (RFC 3339)")
	fs.DurationVar(&r.lineEvery, "progress-interval", defaultLineEvery, "how often a progress line is printed when stdout is not a terminal")
}

func (r *rolloutCmd) Validate(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	if r.customer == "" {
		return errors.New("--customer is required")
	}
	if !licensing.ValidID(r.customer) {
		return fmt.Errorf("--customer %q is not a valid ID", r.customer)
	}
	if countTrue(r.csvPath != "", r.usersFile != "", r.allUsers) != 1 {
		return errors.New("give exactly one of --csv, --users-file and --all-users")
	}
	if err := r.validateCopy(); err != nil {
		return err
	}
	if len(r.assign) == 0 && len(r.revoke) == 0 && len(r.replace) == 0 && r.copyFrom == "" {
		return errors.New("nothing to do: give at least one --assign or --revoke SKU, --replace FROM:TO or --copy-from USER")
	}
	var both []string
	for _, a := range r.assign {
		for _, v := range r.revoke {
			if a == v {
				both = append(both, a)
			}
		}
	}
	switch len(both) {
	case 0:
	case 1:
		return fmt.Errorf("SKU %s is both assigned and revoked; choose one", both[0])
	default:
		return fmt.Errorf("SKUs %s are both assigned and revoked; choose one for each", strings.Join(both, ", "))
	}
	if r.location != "" {
		r.location = strings.ToUpper(strings.TrimSpace(r.location))
		if !licensing.ValidCountry(r.location) {
			return fmt.Errorf("--usage-location %q is not an ISO 3166-1 alpha-2 country code (for example PL, US, DE)", r.location)
		}
	}
	if r.lineEvery <= 0 {
		return errors.New("--progress-interval must be positive")
	}
	if err := r.validateNotBefore(); err != nil {
		return err
	}
	if r.report != "" {
		// Found out now, not after the operation ran.
		if st, err := os.Stat(filepath.Dir(r.report)); err != nil || !st.IsDir() {
			return fmt.Errorf("--report %s: the folder %s does not exist", r.report, filepath.Dir(r.report))
		}
	}
	return r.conn.validate()
}

// validateNotBefore reads --not-before, which does not go with waiting.
func (r *rolloutCmd) validateNotBefore() error {
	if r.notBeforeText == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339, r.notBeforeText)
	if err != nil {
		return fmt.Errorf("--not-before %q is not an RFC 3339 time; write it like 2026-12-12T22:00:00Z or 2026-12-12T23:00:00+01:00", r.notBeforeText)
	}
	if (r.wait.set && r.wait.val) || r.report != "" {
		return errors.New("--not-before schedules the rollout and returns; leave out --wait and --report, and watch it when it starts with: licenseops operation watch OP")
	}
	r.notBefore = &t
	return nil
}

// validateCopy checks --copy-from and --exact, as the API would.
func (r *rolloutCmd) validateCopy() error {
	switch {
	case r.copyFrom == "" && r.exact:
		return errors.New("--exact goes with --copy-from USER")
	case r.copyFrom == "":
		return nil
	case len(r.assign) > 0 || len(r.revoke) > 0 || len(r.replace) > 0 || r.disabledPlans.Len() > 0:
		return errors.New("--copy-from goes alone (with the plans the user has off): leave out --assign, --revoke, --replace and --disable-plan, or run them as another rollout")
	case !licensing.ValidID(r.copyFrom):
		return fmt.Errorf("--copy-from %q is not a valid user ID", r.copyFrom)
	}
	return nil
}

func (r *rolloutCmd) Run(ctx context.Context, env *Env) error {
	c := r.conn.client()
	wait := (r.wait.value(env.terminal(env.Stdout)) || r.report != "") && r.notBefore == nil
	change := licensing.Change{Assign: nonNil(r.assign), Revoke: nonNil(r.revoke), UsageLocation: r.location, Replace: r.replace,
		DisabledPlans: r.disabledPlans.plans()}

	// The customer and its SKUs first: a typo there is one message, not
	// every row of the input reported as an unknown user.
	readStart := time.Now()
	skus := slices.Concat(change.Assign, change.Revoke, licensing.ReplaceSources(change.Replace), licensing.ReplaceTargets(change.Replace))
	if _, err := checkCustomer(ctx, c, r.customer, skus); err != nil {
		return interrupted(err)
	}

	// Read, resolve and validate the selection.
	in, dir, err := readSelection(ctx, c, env.Stdin, r.customer, r.csvPath, r.usersFile, r.allUsers, nil)
	if err != nil {
		return interrupted(err)
	}
	if dir != nil {
		// With the user list at hand anyway, users that do not exist are
		// found here, with their line numbers, before sending.
		dropUnknown(r.customer, in, dir)
	}
	readTime := time.Since(readStart)
	printInputSummary(env.Stdout, in, readTime)
	if err := checkProblems(env.Stdout, env.Stderr, in, r.skipBad); err != nil {
		return withHint(err, "Nothing was sent.")
	}
	ids := in.ids()
	if len(ids) == 0 {
		return errors.New("no users selected; nothing was sent")
	}

	// Send it: one operation, whatever the size, or its dry run. Ctrl-C
	// must not cut the request of an operation short, or nobody would know
	// whether the operation exists. The idempotency key makes a retried
	// request (after a 429) safe.
	sendCtx := context.WithoutCancel(ctx)
	if r.dryRun {
		sendCtx = ctx
	}
	sendStart := time.Now()
	request := func(ids []string, allowPartial bool) client.OperationRequest {
		req := client.OperationRequest{UserIDs: ids, Assign: change.Assign, Revoke: change.Revoke, Replace: change.Replace,
			CopyFrom: r.copyFrom, Exact: r.exact, AllowPartial: allowPartial, NotBefore: r.notBefore, DisabledPlans: change.DisabledPlans}
		if change.UsageLocation != "" {
			req.UsageLocation = &change.UsageLocation
		}
		return req
	}
	var acc client.AcceptedOperation
	var pv *client.OperationPreview
	send := func(ids []string) (err error) {
		if r.dryRun {
			var p client.OperationPreview
			p, err = c.PreviewOperation(sendCtx, r.customer, request(ids, r.allowPartial))
			pv = &p
		} else {
			acc, err = c.CreateOperation(sendCtx, r.customer, request(ids, r.allowPartial), "rollout-"+uuid.NewString())
		}
		return err
	}
	err = send(ids)
	if client.ErrorCode(err) == client.CodeUnknownUsers {
		unknown, uerr := unknownUsers(sendCtx, c, r.customer, in, err)
		if uerr != nil {
			return interrupted(uerr)
		}
		in.drop(unknown, "no such user in customer "+r.customer)
		if err := checkProblems(env.Stdout, env.Stderr, in, r.skipBad); err != nil {
			return withHint(err, "Nothing was sent.")
		}
		if ids = in.ids(); len(ids) == 0 {
			return errors.New("no users left; nothing was sent")
		}
		fmt.Fprintf(env.Stdout, "Sending the other %s.\n", plural(len(ids), "user"))
		err = send(ids)
	}
	var refused error
	if r.dryRun && !r.allowPartial && client.ErrorCode(err) == client.CodeCountViolation {
		// The rollout would be refused for seats; what it would do with
		// --allow-partial is the useful rest of the answer.
		refused = err
		var p client.OperationPreview
		p, err = c.PreviewOperation(sendCtx, r.customer, request(ids, true))
		pv = &p
	}
	switch {
	case err == nil:
	case r.dryRun:
		return interrupted(flagWording(err))
	default:
		if _, ok := apiError(err); ok {
			return withHint(flagWording(err), "Nothing was queued.")
		}
		return withHint(err, "The API did not answer; see whether the operation was created with: licenseops operation list --customer "+r.customer)
	}
	if r.dryRun {
		return printPreview(env.Stdout, r.customer, r.describe(change), change, pv, refused, r.allowPartial)
	}
	sendTime := time.Since(sendStart)
	if acc.NotBefore != nil {
		fmt.Fprintf(env.Stdout, "Scheduled operation %s for %s (%s) to start at %s.\nCancel it with:\n  licenseops operation cancel %s\nWatch it once it starts with:\n  licenseops operation watch %s\n",
			acc.ID, plural(acc.Total, "user"), r.describe(change), acc.NotBefore.Format(time.RFC3339), acc.ID, acc.ID)
		return nil
	}
	fmt.Fprintf(env.Stdout, "Queued operation %s for %s (%s) in %s: read and validated in %s, sent in %s.\n",
		acc.ID, plural(acc.Total, "user"), r.describe(change), round(readTime+sendTime), round(readTime), round(sendTime))
	if !wait {
		fmt.Fprintf(env.Stdout, "Not waiting for it. Watch it with:\n  licenseops operation watch %s\n", acc.ID)
		return nil
	}
	op, err := watch(ctx, env, c, acc.ID, progressOptions{label: "rollout", name: "rollout", lineEvery: r.lineEvery})
	if err != nil {
		return err
	}
	return finishOperation(ctx, c, op, r.report, env.Stdout)
}

// interrupted turns a context cancelled by Ctrl-C into exit status 130.
func interrupted(err error) error {
	if errors.Is(err, context.Canceled) {
		return &DetachedError{}
	}
	return err
}

// apiFieldsAsFlags rewrites the API's field names in its messages as the
// rollout flags that set them.
var apiFieldsAsFlags = strings.NewReplacer(
	"send allow_partial: true", "pass --allow-partial",
	"allow_partial", "--allow-partial",
	"usage_location", "--usage-location",
	"disabled_plans", "--disable-plan",
)

// flagWording returns err with the API field names of an API error's
// message written as the command's flags: the person at the terminal sets
// --allow-partial, not allow_partial.
func flagWording(err error) error {
	ae, ok := apiError(err)
	if !ok {
		return err
	}
	cp := *ae
	cp.Message = apiFieldsAsFlags.Replace(ae.Message)
	return &cp
}

// skuList is a repeatable flag of SKU IDs; a comma-separated list is split.
type skuList []string

func (l *skuList) String() string { return strings.Join(*l, ",") }

func (l *skuList) Set(v string) error {
	for sku := range strings.SplitSeq(v, ",") {
		sku = strings.TrimSpace(sku)
		if !licensing.ValidID(sku) {
			if sku == "" {
				return fmt.Errorf("%q has an empty SKU ID", v)
			}
			return fmt.Errorf("%q is not a valid SKU ID", sku)
		}
		if !slices.Contains(*l, sku) {
			*l = append(*l, sku)
		}
	}
	return nil
}

// replaceList is the repeatable --replace FROM:TO; a comma-separated list
// of pairs is split.
type replaceList []licensing.Replacement

func (l *replaceList) String() string { return describeReplace(*l) }

func (l *replaceList) Set(v string) error {
	for pair := range strings.SplitSeq(v, ",") {
		from, to, ok := strings.Cut(pair, ":")
		from, to = strings.TrimSpace(from), strings.TrimSpace(to)
		if !ok || !licensing.ValidID(from) || !licensing.ValidID(to) {
			return fmt.Errorf("%q is not FROM:TO with two SKU IDs, like E3:E5", strings.TrimSpace(pair))
		}
		if r := (licensing.Replacement{From: from, To: to}); !slices.Contains(*l, r) {
			*l = append(*l, r)
		}
	}
	return nil
}

// planList is the repeatable --disable-plan SKU:PLAN; SKU: (no plan)
// gives SKU an empty list, which switches every plan of it on.
type planList struct{ m map[string][]string }

func (l *planList) String() string {
	if l == nil {
		return ""
	}
	return describePlans(l.m)
}

func (l *planList) Set(v string) error {
	sku, plan, ok := strings.Cut(v, ":")
	sku, plan = strings.TrimSpace(sku), strings.TrimSpace(plan)
	if !ok || !licensing.ValidID(sku) || (plan != "" && !licensing.ValidID(plan)) {
		return fmt.Errorf("%q is not SKU:PLAN with a SKU ID and a service plan ID, like O365_E3:57ff2da0-773e-42df-b2af-ffb7a2317929", strings.TrimSpace(v))
	}
	if l.m == nil {
		l.m = map[string][]string{}
	}
	plans := l.m[sku]
	if plans == nil {
		plans = []string{}
	}
	if plan != "" && !slices.Contains(plans, plan) {
		plans = append(plans, plan)
	}
	l.m[sku] = plans
	return nil
}

func (l *planList) Len() int { return len(l.m) }

// plans returns the disabled plans by SKU, nil when none was given.
func (l *planList) plans() map[string][]string { return l.m }

// describePlans writes disabled plans as "E3: TEAMS, SWAY off".
func describePlans(m map[string][]string) string {
	parts := make([]string, 0, len(m))
	for _, sku := range slices.Sorted(maps.Keys(m)) {
		if len(m[sku]) == 0 {
			parts = append(parts, sku+": every plan on")
			continue
		}
		parts = append(parts, sku+": "+strings.Join(m[sku], ", ")+" off")
	}
	return strings.Join(parts, "; ")
}

// describeReplace writes replace pairs as FROM→TO.
func describeReplace(replace []licensing.Replacement) string {
	parts := make([]string, len(replace))
	for i, r := range replace {
		parts[i] = r.From + "→" + r.To
	}
	return strings.Join(parts, ", ")
}

// optionalBool is a boolean flag that knows whether it was given.
type optionalBool struct{ val, set bool }

func (b *optionalBool) String() string   { return fmt.Sprint(b.val) }
func (b *optionalBool) IsBoolFlag() bool { return true }

func (b *optionalBool) Set(v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("want true or false")
	}
	b.val, b.set = x, true
	return nil
}

// value is the flag's value, or def when it was not given.
func (b *optionalBool) value(def bool) bool {
	if b.set {
		return b.val
	}
	return def
}

func printInputSummary(w io.Writer, in *userInput, took time.Duration) {
	fmt.Fprintf(w, "Read %s (%s): %s, %s", in.source, in.column, plural(in.rows, "row"), plural(len(in.entries), "user"))
	if n := len(in.duplicates); n > 0 {
		fmt.Fprintf(w, ", %s", plural(n, "duplicate"))
	}
	if n := len(in.bad); n > 0 {
		fmt.Fprintf(w, ", %s", plural(n, "bad row"))
	}
	fmt.Fprintf(w, " in %s.\n", round(took))
}

// maxListed bounds the bad rows and duplicates listed.
const maxListed = 20

// checkProblems lists duplicates (stdout) and bad rows (stderr); with bad
// rows it returns an error unless skipBad, which drops them.
func checkProblems(stdout, stderr io.Writer, in *userInput, skipBad bool) error {
	sort.SliceStable(in.bad, func(i, j int) bool { return in.bad[i].line < in.bad[j].line })
	sort.SliceStable(in.duplicates, func(i, j int) bool { return in.duplicates[i].line < in.duplicates[j].line })
	if !in.duplicatesShown {
		dups := *in
		dups.bad = nil
		dups.printProblems(stdout, maxListed)
		in.duplicatesShown = true
	}
	if len(in.bad) == 0 {
		return nil
	}
	bad := *in
	bad.duplicates = nil
	bad.printProblems(stderr, maxListed)
	if skipBad {
		fmt.Fprintf(stderr, "Skipping the %s (--skip-bad-rows).\n", plural(len(in.bad), "bad row"))
		in.bad = nil
		return nil
	}
	return fmt.Errorf("%s: correct them, or pass --skip-bad-rows to go on without them", plural(len(in.bad), "bad row"))
}

// describe is the rollout's change in words.
func (r *rolloutCmd) describe(ch licensing.Change) string {
	if r.copyFrom == "" {
		return describeChange(ch)
	}
	if r.exact {
		return "copy exactly the licenses of " + r.copyFrom
	}
	return "copy the licenses of " + r.copyFrom
}

func describeChange(ch licensing.Change) string {
	var parts []string
	if len(ch.Assign) > 0 {
		parts = append(parts, "assign "+strings.Join(ch.Assign, ", "))
	}
	if len(ch.Revoke) > 0 {
		parts = append(parts, "revoke "+strings.Join(ch.Revoke, ", "))
	}
	if len(ch.Replace) > 0 {
		parts = append(parts, "replace where held "+describeReplace(ch.Replace))
	}
	if len(ch.DisabledPlans) > 0 {
		parts = append(parts, "service plans "+describePlans(ch.DisabledPlans))
	}
	if ch.UsageLocation != "" {
		parts = append(parts, "usage location "+ch.UsageLocation)
	}
	return strings.Join(parts, "; ")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// printPreview shows the API's dry run of the change: per SKU the users
// it would change and the seats, then every user's predicted outcome
// counted by code. refused is the CountViolation that the rollout would get
// without --allow-partial; pv is then the dry run with it. It returns a
// PartialError when some users would fail or seats are short.
func printPreview(w io.Writer, cid, what string, ch licensing.Change, pv *client.OperationPreview, refused error, allowPartial bool) error {
	fmt.Fprintf(w, "\nDry run for customer %s: %s; %s. Nothing is queued.\n\n", cid, plural(pv.Total, "selected user"), what)
	tw := newTable(w)
	fmt.Fprintln(tw, "SKU\tCHANGE\tUSERS AFFECTED\tUNCHANGED\tSEATS NEEDED\tAVAILABLE\tSHORT")
	for _, s := range pv.SKUs {
		fmt.Fprintf(tw, "%s\tassign\t%d would get it\t%s\t%d\t%d\t%d\n", s.SKU, s.Needed, plural(pv.Total-s.Needed, "holds it or would fail", "hold it or would fail"),
			s.Needed, s.Available, max(0, s.Needed-s.Available))
	}
	// A replaced SKU is revoked from the users who hold it.
	for _, sku := range slices.Concat(ch.Revoke, licensing.ReplaceSources(ch.Replace)) {
		// A user holds the SKU now when the change would revoke it, or
		// when it would fail and keep what it has.
		held := 0
		for _, row := range pv.Results {
			if slices.Contains(row.Revoked, sku) || (row.Error != nil && slices.Contains(row.Licenses, sku)) {
				held++
			}
		}
		fmt.Fprintf(tw, "%s\trevoke\t%d would lose it\t%s\t-\t-\t-\n", sku, held, plural(pv.Total-held, "does not hold it", "do not hold it"))
	}
	_ = tw.Flush()
	short := false
	for _, s := range pv.SKUs {
		n := s.Needed - s.Available
		if n <= 0 {
			continue
		}
		short = true
		fmt.Fprintf(w, "%s is %s short", s.SKU, plural(n, "seat"))
		if s.BuyMoreURL != "" {
			fmt.Fprintf(w, "; buy more: %s", s.BuyMoreURL)
		}
		switch {
		case refused != nil:
			fmt.Fprintln(w, ". Without --allow-partial the rollout would be refused with CountViolation; the outcomes below are those with --allow-partial.")
		case allowPartial:
			fmt.Fprintf(w, ". With --allow-partial, up to %s would fail with CountViolation.\n", plural(n, "user"))
		}
	}

	// Each user's outcome, as the API predicts it with the workers' rules.
	o := newOutcomes()
	for _, row := range pv.Results {
		if row.Error != nil {
			o.add(row.UserID, row.UserPrincipalName, "would fail", string(row.Error.Code), row.Error.Message)
		} else {
			o.add(row.UserID, row.UserPrincipalName, "would succeed", "", "")
		}
	}
	fmt.Fprintln(w)
	if pv.WouldFail > 0 {
		fmt.Fprintf(w, "%d of %s would fail.\n", pv.WouldFail, plural(pv.Total, "user"))
	}
	o.print(w, "Outcomes")
	if pv.WouldFail == 0 && refused == nil && !short {
		fmt.Fprintln(w, "\nEvery selected user would succeed.")
		return nil
	}
	fmt.Fprintln(w, "\nSome users would fail (see above).")
	return &PartialError{Msg: "dry run: some users would fail; nothing was queued"}
}
