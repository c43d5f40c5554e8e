package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/licenseops/licenseops/client"
	seeder "github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
	"github.com/licenseops/licenseops/worker"
)

// The model test: random catalogs, users and seats, and concurrent
// operations run by several worker instances, compared afterwards with a
// sequential reference model built on the domain's rules
// (licensing.Evaluate). A run is reproducible from its seed:
//
//	LICENSEOPS_MODEL_SEED=1234 LICENSEOPS_MODEL_RUNS=1 go test ./worker -run TestModel -v
//
// LICENSEOPS_MODEL_RUNS sets the number of runs (seeds seed, seed+1, …);
// `make soak` runs many.
func TestModel(t *testing.T) {
	t.Parallel()
	runs := envInt(t, "LICENSEOPS_MODEL_RUNS", 6)
	seed := uint64(envInt(t, "LICENSEOPS_MODEL_SEED", 20260601))
	b := testapp.New(t, testapp.Options{Workers: 3, WorkerConfig: worker.Config{Concurrency: 8, MaxBatch: 4,
		Sweep: worker.SweepConfig{Interval: 100 * time.Millisecond}}})
	for i := range runs {
		s := seed + uint64(i)
		sc := newScenario(s)
		if msg := runScenario(t, b, sc); msg != "" {
			repro, _ := json.MarshalIndent(sc, "", "  ")
			t.Fatalf("model run with seed %d failed: %s\nreproduce: LICENSEOPS_MODEL_SEED=%d LICENSEOPS_MODEL_RUNS=1 go test ./worker -run TestModel -v\nscenario: %s",
				s, msg, s, repro)
		}
	}
	t.Logf("model: %d runs from seed %d passed", runs, seed)
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// scenario is one run's world and operations, as JSON for a reproduction.
type scenario struct {
	Seed            uint64                       `json:"seed"`
	DefaultLocation string                       `json:"default_usage_location,omitempty"`
	Catalog         map[string]licensing.Product `json:"catalog"`
	Users           []modelUser                  `json:"users"`
	Seats           map[string]int               `json:"seats"`
	Operations      []modelOp                    `json:"operations"`
}

type modelUser struct {
	ID       string   `json:"id"`
	Enabled  bool     `json:"enabled"`
	Location string   `json:"usage_location,omitempty"`
	Held     []string `json:"held"`
}

type modelOp struct {
	Users         []string `json:"user_ids"`
	Assign        []string `json:"assign,omitempty"`
	Revoke        []string `json:"revoke,omitempty"`
	UsageLocation string   `json:"usage_location,omitempty"`
	AllowPartial  bool     `json:"allow_partial"`
	// Cancel cancels the operation as soon as it is accepted: users it
	// reached first keep their change, the others are cancelled.
	Cancel bool `json:"cancel,omitempty"`
}

var modelLocations = []string{"US", "PL", "CN", ""}

func newScenario(seed uint64) scenario {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	sc := scenario{Seed: seed, Catalog: map[string]licensing.Product{}, Seats: map[string]int{}}
	if r.IntN(2) == 0 {
		sc.DefaultLocation = "US"
	}
	nSKU := 3 + r.IntN(3)
	skus := make([]string, nSKU)
	for i := range skus {
		skus[i] = fmt.Sprintf("S%d", i)
	}
	for i, sku := range skus {
		p := licensing.Product{SKU: sku, Name: sku}
		if i > 0 && r.IntN(3) == 0 {
			p.Requires = []string{skus[r.IntN(i)]} // only earlier SKUs: no cycles
		}
		if r.IntN(4) == 0 {
			if x := skus[r.IntN(nSKU)]; x != sku && !slices.Contains(p.Requires, x) {
				p.Excludes = []string{x}
			}
		}
		switch r.IntN(5) {
		case 0:
			p.AllowedLocations = []string{"US"}
		case 1:
			p.ProhibitedLocations = []string{"CN"}
		}
		sc.Catalog[sku] = p
	}
	nUsers := 4 + r.IntN(9)
	held := map[string]int{}
	for i := range nUsers {
		u := modelUser{ID: fmt.Sprintf("m%02d", i), Enabled: r.IntN(6) != 0, Location: modelLocations[r.IntN(len(modelLocations))], Held: []string{}}
		for _, sku := range skus {
			if r.IntN(4) == 0 {
				u.Held = append(u.Held, sku)
				held[sku]++
			}
		}
		sc.Users = append(sc.Users, u)
	}
	for _, sku := range skus {
		sc.Seats[sku] = held[sku] + r.IntN(nUsers/2+1) // often short
	}
	nOps := 2 + r.IntN(3)
	for range nOps {
		var op modelOp
		for _, u := range sc.Users {
			if r.IntN(3) != 0 {
				op.Users = append(op.Users, u.ID)
			}
		}
		if len(op.Users) == 0 {
			op.Users = []string{sc.Users[0].ID}
		}
		perm := r.Perm(nSKU)
		switch r.IntN(5) {
		case 0, 1: // assign
			op.Assign = []string{skus[perm[0]]}
			if r.IntN(3) == 0 {
				op.Assign = append(op.Assign, skus[perm[1]])
			}
		case 2: // revoke
			op.Revoke = []string{skus[perm[0]]}
		case 3: // swap
			op.Assign, op.Revoke = []string{skus[perm[0]]}, []string{skus[perm[1]]}
		case 4: // with a usage location
			op.Assign = []string{skus[perm[0]]}
			op.UsageLocation = modelLocations[r.IntN(3)]
		}
		op.AllowPartial = r.IntN(3) != 0
		op.Cancel = r.IntN(4) == 0
		sc.Operations = append(sc.Operations, op)
	}
	return sc
}

// runScenario seeds the scenario as its own partner and customer, submits
// its operations at once, waits for them and compares the outcome with
// the model. It returns what is wrong, or "".
func runScenario(t *testing.T, b *testapp.Bundle, sc scenario) string {
	t.Helper()
	ctx := context.Background()
	partner, cid := fmt.Sprintf("model-%d", sc.Seed), fmt.Sprintf("m%d", sc.Seed)
	c := b.Client(partner, "global_admin")
	tn := seeder.Tenant{Customer: client.CustomerRequest{ID: cid, Name: cid}, Products: map[string]client.ProductRequest{}, Seats: sc.Seats}
	if sc.DefaultLocation != "" {
		tn.Customer.DefaultUsageLocation = new(sc.DefaultLocation)
	}
	for sku, p := range sc.Catalog {
		tn.Products[sku] = client.ProductRequest{Name: p.Name, Requires: p.Requires, Excludes: p.Excludes,
			AllowedLocations: p.AllowedLocations, ProhibitedLocations: p.ProhibitedLocations}
	}
	for _, u := range sc.Users {
		imp := client.UserImport{ID: u.ID, UserPrincipalName: u.ID + "@model.example", DisplayName: u.ID, AccountEnabled: new(u.Enabled)}
		if u.Location != "" {
			imp.UsageLocation = new(u.Location)
		}
		tn.Users = append(tn.Users, imp)
	}
	c.Seed(tn)
	// The licenses users hold before: written as a directory sync would,
	// with the seats they consume.
	for _, u := range sc.Users {
		for _, sku := range u.Held {
			b.DB.MustExec(`INSERT INTO assignments (customer_key, user_id, sku_id) SELECT customer_key, $2, $3 FROM customers WHERE id = $1`, cid, u.ID, sku)
			b.DB.MustExec(`UPDATE subscriptions s SET consumed = consumed + 1 FROM customers c
				WHERE c.id = $1 AND s.customer_key = c.customer_key AND s.sku_id = $2`, cid, sku)
		}
	}

	// All operations at once.
	ids := make([]string, len(sc.Operations))
	errs := make([]error, len(sc.Operations))
	var wg sync.WaitGroup
	for i, op := range sc.Operations {
		wg.Go(func() {
			req := client.OperationRequest{UserIDs: op.Users, Assign: op.Assign, Revoke: op.Revoke, AllowPartial: op.AllowPartial}
			if op.UsageLocation != "" {
				req.UsageLocation = new(op.UsageLocation)
			}
			acc, err := c.CreateOperation(ctx, cid, req, "")
			ids[i], errs[i] = acc.ID, err
			if err == nil && op.Cancel {
				// A cancel that comes after the operation finished is a
				// Conflict, which is fine: then nothing was cancelled.
				if _, err := c.CancelOperation(ctx, acc.ID); client.ErrorCode(err) != client.CodeConflict {
					errs[i] = err
				}
			}
		})
	}
	wg.Wait()
	// outcome[user][op] is the user's status and code in each accepted operation.
	outcome := map[string]map[int]string{}
	for i, err := range errs {
		if err != nil {
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Code != string(licensing.CodeCountViolation) || sc.Operations[i].AllowPartial {
				return fmt.Sprintf("operation %d: %v", i, err)
			}
			continue // refused at intake for seats: no operation
		}
		c.WaitOperation(ids[i], 2*time.Minute)
		for u, o := range outcomes(t, c, ids[i]) {
			if outcome[u] == nil {
				outcome[u] = map[int]string{}
			}
			outcome[u][i] = o
		}
	}

	// Invariants (the checker's, including no CountViolation while a grant
	// of the operation went unused) and exact seats.
	problems, err := b.Store.Check(ctx, storageScope(t, b, cid))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		return fmt.Sprintf("invariants broken: %v", problems)
	}
	var seatRows []struct {
		SKU         string `db:"sku_id"`
		Total       int    `db:"total"`
		Consumed    int    `db:"consumed"`
		Reserved    int    `db:"reserved"`
		Assignments int    `db:"assignments"`
	}
	if err := b.DB.Select(&seatRows, `
		SELECT s.sku_id, s.total, s.consumed, s.reserved,
			(SELECT count(*) FROM assignments a WHERE a.customer_key = s.customer_key AND a.sku_id = s.sku_id) AS assignments
		FROM subscriptions s JOIN customers c USING (customer_key) WHERE c.id = $1`, cid); err != nil {
		t.Fatal(err)
	}
	for _, s := range seatRows {
		if s.Reserved != 0 || s.Consumed != s.Assignments || s.Consumed > s.Total {
			return fmt.Sprintf("seats of %s: %+v, want consumed = assignments ≤ total and nothing reserved", s.SKU, s)
		}
	}

	// Every user's outcomes and final state against the model.
	var finals []struct {
		ID       string         `db:"id"`
		Location *string        `db:"usage_location"`
		Held     pq.StringArray `db:"held"`
	}
	if err := b.DB.Select(&finals, `
		SELECT u.id, u.usage_location,
			ARRAY(SELECT a.sku_id FROM assignments a WHERE a.customer_key = u.customer_key AND a.user_id = u.id ORDER BY a.sku_id) AS held
		FROM users u JOIN customers c USING (customer_key) WHERE c.id = $1 ORDER BY u.id`, cid); err != nil {
		t.Fatal(err)
	}
	for i, f := range finals {
		u := sc.Users[i]
		loc := ""
		if f.Location != nil {
			loc = *f.Location
		}
		if msg := sc.checkUser(u, outcome[u.ID], []string(f.Held), loc); msg != "" {
			return fmt.Sprintf("user %s: %s (outcomes by operation %v)", u.ID, msg, outcome[u.ID])
		}
	}
	return ""
}

func storageScope(t *testing.T, b *testapp.Bundle, cid string) (scope storage.CheckScope) {
	t.Helper()
	if err := b.DB.Get(&scope.CustomerKey, `SELECT customer_key FROM customers WHERE id = $1`, cid); err != nil {
		t.Fatal(err)
	}
	return scope
}

// checkUser holds one user to the model: its final licenses satisfy the
// rules for what it newly got, and some serial order of the operations it
// was part of, each evaluated by licensing.Evaluate from its licenses
// before, gives every outcome it got and its final licenses and usage
// location. A CountViolation is allowed wherever the rules pass and the
// change newly assigns a SKU (seats are shared with other users).
func (sc scenario) checkUser(u modelUser, got map[int]string, final []string, finalLoc string) string {
	for _, sku := range final {
		if slices.Contains(u.Held, sku) {
			continue
		}
		p := sc.Catalog[sku]
		for _, r := range p.Requires {
			if !slices.Contains(final, r) {
				return fmt.Sprintf("holds %s, newly assigned, without %s which it requires", sku, r)
			}
		}
		for _, x := range final {
			if slices.Contains(p.Excludes, x) || slices.Contains(sc.Catalog[x].Excludes, sku) {
				return fmt.Sprintf("holds %s, newly assigned, together with %s which excludes it", sku, x)
			}
		}
	}
	ops := make([]int, 0, len(got))
	for i := range got {
		ops = append(ops, i)
	}
	slices.Sort(ops)
	var tried []string
	for perm := range permutations(ops) {
		held, loc, ok := slices.Clone(u.Held), u.Location, true
		for _, i := range perm {
			op := sc.Operations[i]
			res, lerr := licensing.Evaluate(licensing.UserState{Held: held, UsageLocation: loc, AccountEnabled: u.Enabled},
				licensing.Change{Assign: op.Assign, Revoke: op.Revoke, UsageLocation: op.UsageLocation}, sc.DefaultLocation, sc.Catalog)
			want := licensing.ItemSucceeded + " "
			if lerr != nil {
				want = licensing.ItemFailed + " " + string(lerr.Code)
			}
			switch {
			case got[i] == want:
			case lerr == nil && len(res.Assigned) > 0 && got[i] == licensing.ItemFailed+" "+string(licensing.CodeCountViolation):
				continue // no seat: nothing changes
			case got[i] == licensing.ItemCancelled+" ":
				continue // cancelled before it reached the user: nothing changes
			default:
				ok = false
			}
			if !ok {
				break
			}
			if lerr == nil && got[i] == want {
				held = res.Licenses
				if op.UsageLocation != "" {
					loc = op.UsageLocation
				}
			}
		}
		slices.Sort(held)
		if ok && slices.Equal(held, final) && loc == finalLoc {
			return ""
		}
		tried = append(tried, fmt.Sprint(perm))
	}
	return fmt.Sprintf("no serial order of operations %v explains its outcomes and final licenses %v in %q (from %v in %q; orders tried %v)",
		ops, final, finalLoc, u.Held, u.Location, tried)
}

// permutations yields every order of s.
func permutations(s []int) func(yield func([]int) bool) {
	return func(yield func([]int) bool) {
		var rec func(k int) bool
		p := slices.Clone(s)
		rec = func(k int) bool {
			if k == len(p) {
				return yield(slices.Clone(p))
			}
			for i := k; i < len(p); i++ {
				p[k], p[i] = p[i], p[k]
				if !rec(k + 1) {
					return false
				}
				p[k], p[i] = p[i], p[k]
			}
			return true
		}
		rec(0)
	}
}
