package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	seeder "github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/worker"
)

// outcomes returns each user's status and code in an operation's report.
func outcomes(t *testing.T, c *testapp.Client, opID string) map[string]string {
	t.Helper()
	got := map[string]string{}
	if _, err := c.Report(context.Background(), opID, func(r client.ReportRow) error {
		code := ""
		if r.Error != nil {
			code = string(r.Error.Code)
		}
		got[r.UserID] = r.Status + " " + code
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// A seat never sits unused while a user who can take it is refused: USONLY
// is allowed only in the US and has one seat; one partial operation for r3
// (PL, listed first) and r7 (US) gives the seat to r7 and fails r3 by the
// location rule, every time, however the two users are batched. Each round
// is its own customer, so one run of the test tries the race many times.
func TestSeatGoesToTheUserWhoCanUseIt(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 2, WorkerConfig: worker.Config{Concurrency: 8}})
	c := b.Client("p", "global_admin")
	ctx := context.Background()
	const rounds = 10
	for round := range rounds {
		cid := fmt.Sprintf("fair-%02d", round)
		users := seeder.Users([]string{"r3", "r7"})
		users[0].UsageLocation, users[1].UsageLocation = new("PL"), new("US")
		c.Seed(seeder.Tenant{
			Customer: client.CustomerRequest{ID: cid, Name: cid},
			Products: map[string]client.ProductRequest{"USONLY": {Name: "US only", AllowedLocations: []string{"US"}}},
			Users:    users,
			Seats:    map[string]int{"USONLY": 1},
		})
		acc, err := c.CreateOperation(ctx, cid, client.OperationRequest{
			UserIDs: []string{"r3", "r7"}, Assign: []string{"USONLY"}, AllowPartial: true}, "")
		if err != nil {
			t.Fatal(err)
		}
		c.WaitOperation(acc.ID, time.Minute)
		got := outcomes(t, c, acc.ID)
		want := map[string]string{
			"r3": licensing.ItemFailed + " " + string(licensing.CodeProhibitedInUsageLocationViolation),
			"r7": licensing.ItemSucceeded + " ",
		}
		if got["r3"] != want["r3"] || got["r7"] != want["r7"] {
			t.Errorf("round %d: outcomes %v, want %v", round, got, want)
		}
	}
	noProblems(t, b)
}
