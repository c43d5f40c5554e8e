package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/licensing"
)

// Reading a selection of users against the API: the customer's user list,
// UPNs resolved to IDs, users that do not exist found before sending.

// usersPageSize is the largest page the API serves: fewest round trips.
const usersPageSize = 500

// directory is the user list of a customer, read once page by page.
type directory struct {
	byID  map[string]*licensing.User
	byUPN map[string]*licensing.User // lower-cased UPN; nil value: ambiguous
	order []*licensing.User          // as the API sorts them
}

func newDirectory(n int) *directory {
	return &directory{byID: make(map[string]*licensing.User, n), byUPN: make(map[string]*licensing.User, n)}
}

func (d *directory) add(users []licensing.User) {
	for i := range users {
		u := &users[i]
		if _, ok := d.byID[u.ID]; ok {
			continue // a user shifted pages while we read
		}
		d.byID[u.ID] = u
		d.order = append(d.order, u)
		k := strings.ToLower(u.UserPrincipalName)
		if _, dup := d.byUPN[k]; dup {
			d.byUPN[k] = nil
		} else {
			d.byUPN[k] = u
		}
	}
}

// directoryParallelism is how many pages of the user list are read at
// once: a page deep in a 100,000-user list costs the database tens of
// milliseconds, so reading them one by one would take seconds more than the
// token's rate limit requires.
const directoryParallelism = 4

// fetchDirectory reads every page of the customer's users, starting after
// first when the caller already has page 1.
func fetchDirectory(ctx context.Context, c *client.Client, cid string, first *client.UserPage) (*directory, error) {
	if first == nil {
		p, err := c.ListUsers(ctx, cid, client.UserListOptions{Page: 1, PageSize: usersPageSize})
		if err != nil {
			return nil, err
		}
		first = &p
	}
	pages := make([][]licensing.User, max(first.TotalPages, 1))
	pages[0] = first.Users
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(directoryParallelism, len(pages)-1) {
		wg.Go(func() {
			for page := range next {
				p, err := c.ListUsers(ctx, cid, client.UserListOptions{Page: page, PageSize: usersPageSize})
				if err != nil {
					cancel(err)
					continue
				}
				pages[page-1] = p.Users
			}
		})
	}
feed:
	for page := 2; page <= len(pages); page++ {
		select {
		case next <- page:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	d := newDirectory(first.Total)
	for _, users := range pages {
		d.add(users)
	}
	return d, nil
}

// readSelection reads the users of one source: a CSV, a users file, every
// user, or IDs given as arguments. UPNs are resolved; the user list is
// returned when it was read in full.
func readSelection(ctx context.Context, c *client.Client, stdin io.Reader, cid, csvPath, usersFile string, allUsers bool, args []string) (*userInput, *directory, error) {
	switch {
	case allUsers:
		dir, err := fetchDirectory(ctx, c, cid, nil)
		if err != nil {
			return nil, nil, err
		}
		return allUsersInput(dir), dir, nil
	case csvPath != "" || usersFile != "":
		path, read := csvPath, readUserCSV
		if usersFile != "" {
			path, read = usersFile, readUsersFile
		}
		r := stdin
		if path != "-" {
			f, err := os.Open(path) // #nosec G304 -- the operator names the input file on the command line
			if err != nil {
				return nil, nil, err
			}
			defer f.Close()
			r = f
		}
		in, err := read(r, path)
		if err != nil {
			return nil, nil, err
		}
		dir, err := in.resolve(ctx, c, cid, nil)
		return in, dir, err
	default:
		in := &userInput{source: "arguments", column: "user IDs", lineOf: map[string]int{}}
		for i, id := range args {
			in.rows++
			in.addID(id, i+1)
		}
		return in, nil, nil
	}
}

// dropUnknown makes the selected users that are not in dir, the whole
// user list, bad rows.
func dropUnknown(cid string, in *userInput, dir *directory) {
	var unknown []string
	for _, id := range in.ids() {
		if _, ok := dir.byID[id]; !ok {
			unknown = append(unknown, id)
		}
	}
	in.drop(unknown, "no such user in customer "+cid)
}

// unknownUsers lists the selected users that do not exist, after the API
// refused the operation with UnknownUsers: from the error's details when
// they name all of them, else by reading the user list.
func unknownUsers(ctx context.Context, c *client.Client, cid string, in *userInput, apiErr error) ([]string, error) {
	var d client.UnknownUsersDetails
	if ae, ok := apiError(apiErr); ok && ae.DecodeDetails(&d) == nil && len(d.UserIDs) > 0 && len(d.UserIDs) >= d.Count {
		return d.UserIDs, nil
	}
	dir, err := fetchDirectory(ctx, c, cid, nil)
	if err != nil {
		return nil, err
	}
	var unknown []string
	for _, id := range in.ids() {
		if _, ok := dir.byID[id]; !ok {
			unknown = append(unknown, id)
		}
	}
	return unknown, nil
}

// upnQueryLimit: with at most this many UPNs to resolve, and fewer than the
// pages of the user list, each UPN is looked up with q= instead.
const upnQueryLimit = 100

// resolve turns the UPNs of in into user IDs: one q= lookup per UPN when
// there are few of them (fewer than the user list has pages), else the
// whole user list once, read into a case-insensitive map. dir, when not
// nil, is the user list already read. It returns the whole user list when
// it has one (dir, or the list it read). Unknown and ambiguous UPNs become
// bad rows; two rows that turn out to name the same user count once.
func (in *userInput) resolve(ctx context.Context, c *client.Client, cid string, dir *directory) (*directory, error) {
	n := in.upns()
	if n == 0 {
		return dir, nil
	}
	known := dir
	if known == nil {
		first, err := c.ListUsers(ctx, cid, client.UserListOptions{Page: 1, PageSize: usersPageSize})
		if err != nil {
			return nil, err
		}
		if n <= upnQueryLimit && n < first.TotalPages-1 {
			known = newDirectory(n)
			known.add(first.Users)
			for _, e := range in.entries {
				if _, found := known.byUPN[strings.ToLower(e.upn)]; e.id != "" || found {
					continue
				}
				users, err := queryUPN(ctx, c, cid, e.upn)
				if err != nil {
					return nil, err
				}
				known.add(users)
			}
		} else {
			if known, err = fetchDirectory(ctx, c, cid, &first); err != nil {
				return nil, err
			}
			dir = known
		}
	}
	kept := in.entries[:0]
	later := map[int]bool{} // lines of ID rows that a UPN row before them names too
	for _, e := range in.entries {
		if later[e.line] {
			continue
		}
		if e.id == "" {
			u, found := known.byUPN[strings.ToLower(e.upn)]
			switch {
			case !found:
				in.bad = append(in.bad, badRow{line: e.line, value: e.upn, reason: "no user with this user principal name in customer " + cid})
				continue
			case u == nil:
				in.bad = append(in.bad, badRow{line: e.line, value: e.upn, reason: "several users have this user principal name; use an id column"})
				continue
			}
			e.id = u.ID
			if first, dup := in.lineOf[e.id]; dup && first < e.line {
				in.duplicates = append(in.duplicates, duplicateRow{line: e.line, firstLine: first, value: e.upn})
				continue
			} else if dup {
				// An ID row further down names the same user: this row is the first.
				in.duplicates = append(in.duplicates, duplicateRow{line: first, firstLine: e.line, value: e.id})
				later[first] = true
			}
			in.lineOf[e.id] = e.line
		}
		kept = append(kept, e)
	}
	in.entries = kept
	return dir, nil
}

// queryUPN returns the users whose UPN equals upn (case-insensitively),
// searching with q= and paging while the matches go on.
func queryUPN(ctx context.Context, c *client.Client, cid, upn string) ([]licensing.User, error) {
	var out []licensing.User
	for page := 1; ; page++ {
		p, err := c.ListUsers(ctx, cid, client.UserListOptions{Page: page, PageSize: usersPageSize, Query: upn})
		if err != nil {
			return nil, err
		}
		for _, u := range p.Users {
			if strings.EqualFold(u.UserPrincipalName, upn) {
				out = append(out, u)
			}
		}
		if page >= p.TotalPages {
			return out, nil
		}
	}
}

// checkCustomer makes sure, before any input is read, that the customer
// exists, so that a typo in --customer is one clear error instead of every
// row of the input reported as an unknown user; and that the customer has a
// subscription for each of skus, naming the ones it has not. It returns the
// customer's subscriptions.
func checkCustomer(ctx context.Context, c *client.Client, cid string, skus []string) ([]client.Subscription, error) {
	subs, err := c.ListSubscriptions(ctx, cid)
	if client.ErrorCode(err) == client.CodeNotFound {
		return nil, withHint(fmt.Errorf("customer %q not found", cid),
			"  check --customer: it takes the customer's ID, of a customer of your token's partner")
	}
	if err != nil {
		return nil, err
	}
	held := make([]string, len(subs))
	for i, s := range subs {
		held[i] = s.SKU
	}
	var unknown []string
	for _, sku := range skus {
		if !slices.Contains(held, sku) && !slices.Contains(unknown, sku) {
			unknown = append(unknown, sku)
		}
	}
	if len(unknown) > 0 {
		return nil, errors.New(unknownSKUsMessage(cid, unknown, held))
	}
	return subs, nil
}

// unknownSKUsMessage names the SKUs the customer has no subscription for,
// with the customer's SKU that a wrong one matches ignoring case, and the
// customer's SKUs.
func unknownSKUsMessage(cid string, unknown, held []string) string {
	names := make([]string, len(unknown))
	for i, sku := range unknown {
		names[i] = sku
		for _, h := range held {
			if strings.EqualFold(sku, h) {
				names[i] += " (did you mean " + h + "?)"
				break
			}
		}
	}
	msg := fmt.Sprintf("customer %s has no subscription for %s", cid, strings.Join(names, ", "))
	if len(held) == 0 {
		return msg + "; it has no subscriptions yet"
	}
	return msg + "; its SKUs are " + strings.Join(held, ", ")
}
