package api_test

import (
	"context"
	"sync"
	"testing"

	"github.com/lib/pq"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/testapp"
)

// The progress of a running operation comes from counters that a trigger
// keeps on item statuses, not from counting its items. Items changed by
// several connections at once, forward and back, must leave the counters
// equal to what counting the items gives, in GET and in the list.
func TestProgressCountersFollowItems(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{}) // no worker: the test moves the items itself
	c := b.Client("p", "global_admin")
	ids := c.Seed(seed.OneSKU("prog", 200, "E5", 200))
	ctx := context.Background()
	acc, err := c.CreateOperation(ctx, "prog", client.OperationRequest{UserIDs: ids, Assign: []string{"E5"}}, "")
	if err != nil {
		t.Fatal(err)
	}

	set := func(status string, from, to int) {
		t.Helper()
		if _, err := b.DB.ExecContext(ctx,
			`UPDATE operation_items SET status = $1 WHERE operation_id = $2 AND user_id = ANY($3)`,
			status, acc.ID, pq.StringArray(ids[from:to])); err != nil {
			t.Fatal(err)
		}
	}
	// 20 connections at once, each finishing 10 items: shards collide.
	var wg sync.WaitGroup
	for k := range 20 {
		wg.Go(func() {
			status := "succeeded"
			if k%4 == 0 {
				status = "failed"
			}
			set(status, k*10, k*10+10)
		})
	}
	wg.Wait()
	set("succeeded", 0, 5) // failed → succeeded
	set("pending", 190, 200)
	set("would_revoke", 190, 192)

	type counts struct{ Succeeded, Failed, Pending int }
	var want counts
	if err := b.DB.QueryRowContext(ctx, `
		SELECT count(*) FILTER (WHERE status IN ('succeeded','would_revoke')), count(*) FILTER (WHERE status = 'failed'),
		       count(*) FILTER (WHERE status IN ('pending','applying'))
		FROM operation_items WHERE operation_id = $1`, acc.ID).Scan(&want.Succeeded, &want.Failed, &want.Pending); err != nil {
		t.Fatal(err)
	}
	if want.Failed == 0 || want.Pending == 0 || want.Succeeded == 0 {
		t.Fatalf("the test should leave items of every kind: %+v", want)
	}
	op, err := c.GetOperation(ctx, acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := (counts{op.Succeeded, op.Failed, op.Pending}); got != want {
		t.Errorf("GET progress = %+v, items say %+v", got, want)
	}
	page, err := c.ListOperations(ctx, "prog", client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Operations) != 1 {
		t.Fatalf("list has %d operations, want 1", len(page.Operations))
	}
	if l := page.Operations[0]; (counts{l.Succeeded, l.Failed, l.Pending}) != want {
		t.Errorf("list progress = %+v, items say %+v", l, want)
	}
}

// Items have no foreign key to their operation (it cost a check per item at
// intake); deleting an operation still deletes its items and counters.
func TestDeletingAnOperationDeletesItsItems(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	ids := c.Seed(seed.OneSKU("del", 30, "E5", 30))
	ctx := context.Background()
	var ops []string
	for _, part := range [][]string{ids[:10], ids[10:]} {
		acc, err := c.CreateOperation(ctx, "del", client.OperationRequest{UserIDs: part, Assign: []string{"E5"}}, "")
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, acc.ID)
	}
	b.DB.MustExec(`UPDATE operation_items SET status = 'succeeded' WHERE operation_id = $1`, ops[0])
	count := func(table, op string) (n int) {
		t.Helper()
		if err := b.DB.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE operation_id = $1`, op).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count("operation_items", ops[0]) != 10 || count("operation_progress", ops[0]) == 0 {
		t.Fatal("the operation should have 10 items and progress counters before it is deleted")
	}
	b.DB.MustExec(`DELETE FROM operations WHERE id = $1`, ops[0])
	if n := count("operation_items", ops[0]); n != 0 {
		t.Errorf("%d items of the deleted operation are left", n)
	}
	if n := count("operation_progress", ops[0]); n != 0 {
		t.Errorf("%d progress rows of the deleted operation are left", n)
	}
	if n := count("operation_items", ops[1]); n != 20 {
		t.Errorf("the other operation has %d items, want 20", n)
	}
}
