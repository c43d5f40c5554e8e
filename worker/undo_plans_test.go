package worker_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
	"github.com/licenseops/licenseops/provider/graphsim"
	"github.com/licenseops/licenseops/storage"
	"github.com/licenseops/licenseops/worker"
)

// setPlansOff switches off plans (a text[] literal, "{TEAMS}") in the E3
// license of each of users, outside any operation.
func setPlansOff(b *testapp.Bundle, plans string, users ...string) {
	for _, u := range users {
		b.DB.MustExec(`UPDATE assignments SET disabled_plans = $1 WHERE user_id = $2 AND sku_id = 'E3'`, plans, u)
	}
}

// plansBefore returns each user's plans_before of operation id as JSON
// ("NULL" when none was recorded).
func plansBefore(t *testing.T, b *testapp.Bundle, id string) map[string]string {
	t.Helper()
	var rows []struct {
		UserID string `db:"user_id"`
		Before string `db:"before"`
	}
	if err := b.DB.Select(&rows, `SELECT user_id, COALESCE(plans_before::text, 'NULL') AS before FROM operation_items WHERE operation_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rows {
		out[r.UserID] = r.Before
	}
	return out
}

// Switching Teams and Sway off for holders of E3 who had different plans
// off before, then undoing it, gives each user back its own plans: every
// plan on, Teams off, Sway off. A holder the operation did not change is
// not part of the undo. No seat moves.
func TestUndoPlansOnly(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := plansTenant(t, b, c, "upo", 4, 0, 1, 2, 3)
	setPlansOff(b, "{TEAMS}", users[1])
	setPlansOff(b, "{SWAY}", users[2])
	setPlansOff(b, "{SWAY,TEAMS}", users[3])

	orig := change(t, c, "upo", map[string]any{"user_ids": users, "assign": []string{"E3"}, "disabled_plans": map[string][]string{"E3": {"SWAY", "TEAMS"}}})
	if orig.Succeeded != 4 {
		t.Fatalf("operation = %+v: %v", orig, reportCodes(t, c, orig.ID))
	}
	wantPlansOff(t, b, "upo", "E3", "after the change", users, []string{"SWAY,TEAMS", "SWAY,TEAMS", "SWAY,TEAMS", "SWAY,TEAMS"})
	before := plansBefore(t, b, orig.ID)
	for i, want := range []string{`{"E3": []}`, `{"E3": ["TEAMS"]}`, `{"E3": ["SWAY"]}`, "NULL"} {
		if before[users[i]] != want {
			t.Errorf("%s plans_before = %s, want %s", users[i], before[users[i]], want)
		}
	}

	op := undo(t, c, orig.ID, nil)
	if op.Total != 3 || op.Succeeded != 3 || op.Status != licensing.StatusCompleted || len(op.Assign) != 0 || len(op.Revoke) != 0 {
		t.Fatalf("undo = %+v: %v, want 3 users' plans put back", op, reportCodes(t, c, op.ID))
	}
	if plans := reportPlans(t, c, op.ID); plans[users[0]] != "E3" || plans[users[1]] != "E3" || plans[users[2]] != "E3" {
		t.Errorf("undo plans_changed = %v, want E3 for users 0 to 2", plans)
	}
	wantPlansOff(t, b, "upo", "E3", "after the undo", users, []string{"", "TEAMS", "SWAY", "SWAY,TEAMS"})
	wantHeld(t, b, "upo", "after the undo", users, []string{"E3", "E3", "E3", "E3"})
	wantSeats(t, b, "E3", 4)

	// Redone, the plans go off again.
	if redo := undo(t, c, op.ID, nil); redo.Succeeded != 3 {
		t.Fatalf("redo = %+v: %v", redo, reportCodes(t, c, redo.ID))
	}
	wantPlansOff(t, b, "upo", "E3", "after the redo", users, []string{"SWAY,TEAMS", "SWAY,TEAMS", "SWAY,TEAMS", "SWAY,TEAMS"})
	wantSeats(t, b, "E3", 4)
	noProblems(t, b)
}

// An assignment of E3 with Teams off that gave E3 to two users and
// changed the plans of two holders is undone: the new licenses go (their
// seats come back), the holders get their own plans back. Redone, the
// licenses come back with the plans they had off.
func TestUndoAssignWithPlans(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := plansTenant(t, b, c, "uap", 4, 0, 1)
	setPlansOff(b, "{SWAY}", users[1])

	orig := change(t, c, "uap", map[string]any{"user_ids": users, "assign": []string{"E3", "PROJ"}, "disabled_plans": map[string][]string{"E3": {"TEAMS"}}})
	if orig.Succeeded != 4 {
		t.Fatalf("operation = %+v: %v", orig, reportCodes(t, c, orig.ID))
	}
	wantSeats(t, b, "E3", 4)
	wantSeats(t, b, "PROJ", 4)

	op := undo(t, c, orig.ID, nil)
	if op.Succeeded != 4 || !slices.Equal(op.Revoke, []string{"E3", "PROJ"}) {
		t.Fatalf("undo = %+v: %v", op, reportCodes(t, c, op.ID))
	}
	if changes := reportChanges(t, c, op.ID); changes[users[0]] != "-PROJ" || changes[users[2]] != "-E3-PROJ" {
		t.Errorf("undo changes = %v", changes)
	}
	if plans := reportPlans(t, c, op.ID); plans[users[0]] != "E3" || plans[users[1]] != "E3" || plans[users[2]] != "" {
		t.Errorf("undo plans_changed = %v, want E3 for the holders", plans)
	}
	wantHeld(t, b, "uap", "after the undo", users, []string{"E3", "E3", "", ""})
	wantPlansOff(t, b, "uap", "E3", "after the undo", users, []string{"", "SWAY", "-", "-"})
	wantSeats(t, b, "E3", 2)
	wantSeats(t, b, "PROJ", 0)

	if redo := undo(t, c, op.ID, nil); redo.Succeeded != 4 {
		t.Fatalf("redo = %+v: %v", redo, reportCodes(t, c, redo.ID))
	}
	wantHeld(t, b, "uap", "after the redo", users, []string{"E3,PROJ", "E3,PROJ", "E3,PROJ", "E3,PROJ"})
	wantPlansOff(t, b, "uap", "E3", "after the redo", users, []string{"TEAMS", "TEAMS", "TEAMS", "TEAMS"})
	wantSeats(t, b, "E3", 4)
	wantSeats(t, b, "PROJ", 4)
	noProblems(t, b)
}

// A user whose plans changed after the operation is left alone with
// ChangedSince: by a later operation (found at intake, also when a still
// later one set them back) or outside any operation after the undo was
// taken (found by the worker under the user's lock). The other user's
// plans are put back.
func TestUndoPlansChangedSince(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := plansTenant(t, b, c, "ups", 4, 0, 1, 2, 3)
	setPlansOff(b, "{SWAY}", users...)
	first, err := worker.New(worker.Config{Logger: b.Log, DisableSweeper: true}, b.Store, b.Redis)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	orig := change(t, c, "ups", map[string]any{"user_ids": users, "assign": []string{"E3"}, "disabled_plans": map[string][]string{"E3": {"TEAMS"}}})
	later := change(t, c, "ups", map[string]any{"user_ids": []string{users[0], users[3]}, "assign": []string{"E3"},
		"disabled_plans": map[string][]string{"E3": {"EXCHANGE"}}})
	back := change(t, c, "ups", map[string]any{"user_ids": users[3:], "assign": []string{"E3"}, "disabled_plans": map[string][]string{"E3": {"TEAMS"}}})
	first.Shutdown()
	if orig.Succeeded != 4 || later.Succeeded != 2 || back.Succeeded != 1 {
		t.Fatalf("operations = %+v, %+v, %+v", orig, later, back)
	}
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/operations/"+orig.ID+"/undo", nil).JSON(t, &acc)
	// Before any worker runs, user 1's plans change in the directory.
	setPlansOff(b, "{SWAY,TEAMS}", users[1])
	b.StartWorker(worker.Config{})
	op := c.WaitOperation(acc.ID, 30*time.Second)
	if op.Succeeded != 1 || op.Failed != 3 || op.Status != licensing.StatusCompletedWithErrors {
		t.Fatalf("undo = %+v: %v, want 1 undone and 3 ChangedSince", op, reportCodes(t, c, op.ID))
	}
	codes := reportCodes(t, c, op.ID)
	for i, want := range []string{"failed ChangedSince", "failed ChangedSince", "succeeded", "failed ChangedSince"} {
		if codes[users[i]] != want {
			t.Errorf("%s: %q, want %q", users[i], codes[users[i]], want)
		}
	}
	wantPlansOff(t, b, "ups", "E3", "after the undo", users, []string{"EXCHANGE", "SWAY,TEAMS", "SWAY", "TEAMS"})
	wantSeats(t, b, "E3", 4)
	noProblems(t, b)
	// The checker names a user marked ChangedSince whose plans changed.
	item := `operation_id = '` + op.ID + `' AND user_id = '` + users[0] + `'`
	wantCheckerFinds(t, b, []corruption{{"an undo touched a user marked ChangedSince",
		`UPDATE operation_items SET plans_changed = '{E3}' WHERE ` + item, `UPDATE operation_items SET plans_changed = NULL WHERE ` + item}})
}

// On Microsoft Graph: an assignment of E3 with Sway off (two holders'
// plans changed, two users newly given E3) is undone in the directory,
// each holder's plans as they were, and redone, and the directory, the
// mirror and the seats agree.
func TestUndoPlansGraph(t *testing.T) {
	t.Parallel()
	b, c, sim, ids := graphPlansChanged(t)
	op := undo(t, c, ids[4], nil)
	if op.Succeeded != 4 {
		t.Fatalf("undo = %+v: %v", op, reportCodes(t, c, op.ID))
	}
	wantGraphUndone(t, b, sim, ids[:4])

	// Redone, every user holds E3 with Sway off again.
	if redo := undo(t, c, op.ID, nil); redo.Succeeded != 4 {
		t.Fatalf("redo = %+v: %v", redo, reportCodes(t, c, redo.ID))
	}
	state, _ := sim.Tenant(graphTenantID)
	for _, u := range state.Users {
		if !slices.Equal(u.Licenses, []string{"E3"}) || !slices.Equal(u.DisabledPlans["E3"], []string{"SWAY"}) {
			t.Errorf("%s holds %v with %v off in the directory after the redo, want E3 with SWAY off", u.ID, u.Licenses, u.DisabledPlans)
		}
	}
	directoryMatchesPostgres(t, b, sim)
	wantSeats(t, b, "E3", 4)
	noProblems(t, b)
}

// A worker that died during an undo of plans on Microsoft Graph, before
// calling the directory for users 0 and 2 and after calling it for users
// 1 and 3: the next delivery reads each user's plans and calls the
// directory only for what is still to do.
func TestUndoPlansGraphCrashBetweenSteps(t *testing.T) {
	t.Parallel()
	b, c, sim, ids := graphPlansChanged(t)
	users := ids[:4]
	ctx := context.Background()
	cust := customerOf(t, b, "graph")
	u, err := b.Store.CreateUndo(ctx, storage.NewUndo{PartnerKey: cust.PartnerKey, Customer: cust, OperationID: ids[4], CreatedBy: "test",
		QueueFor: func(int) string { return jobs.QueueDefault }})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := b.Store.LoadPlan(ctx, u.Operation.ID)
	if err != nil {
		t.Fatal(err)
	}
	items, err := b.Store.PrepareExternal(ctx, plan, users)
	if err != nil || len(items) != 4 {
		t.Fatalf("prepared %+v, %v", items, err)
	}
	dir := simClient(t, sim)
	if err := dir.Apply(ctx, graphTenantID, provider.Change{UserID: users[1], Add: []provider.AddLicense{{SKU: "E3", DisabledPlans: []string{"TEAMS"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := dir.Apply(ctx, graphTenantID, provider.Change{UserID: users[3], Remove: []string{"E3"}}); err != nil {
		t.Fatal(err)
	}
	before := sim.Stats().Requests
	if _, err := (&jobs.Enqueuer{Client: asynq.NewClientFromRedisClient(b.Redis)}).EnqueueItems(ctx, u.Operation.ID, jobs.QueueDefault, users); err != nil {
		t.Fatal(err)
	}
	if got := c.WaitOperation(u.Operation.ID, time.Minute); got.Succeeded != 4 {
		t.Fatalf("undo = %+v: %v", got, reportCodes(t, c, u.Operation.ID))
	}
	if n := sim.Stats().Requests - before; n != 6 {
		t.Errorf("the redelivery made %d directory calls, want 6 (4 reads, 2 changes)", n)
	}
	wantGraphUndone(t, b, sim, users)
}

// graphPlansChanged starts a Graph tenant of graphPlanSeed(4) (users 0
// and 1 hold E3, user 1 with Teams off), synced, and assigns E3 with Sway
// off to its four users. It returns the users' IDs and, fifth, the
// operation's.
func graphPlansChanged(t *testing.T) (*testapp.Bundle, *testapp.Client, *graphsim.Server, []string) {
	t.Helper()
	seed := graphPlanSeed(4)
	b, c, sim := startGraph(t, seed, graphOptions{})
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitForUsers(t, c, len(seed.Users))
	ids := graphIDs(seed.Users)
	orig := change(t, c, "graph", map[string]any{"user_ids": ids, "assign": []string{"E3"}, "disabled_plans": map[string][]string{"E3": {"SWAY"}}})
	if orig.Succeeded != 4 {
		t.Fatalf("operation = %+v: %v", orig, reportCodes(t, c, orig.ID))
	}
	if p := reportPlans(t, c, orig.ID); p[ids[0]] != "E3" || p[ids[1]] != "E3" {
		t.Fatalf("plans_changed = %v, want E3 for users 0 and 1", p)
	}
	wantSeats(t, b, "E3", 4)
	return b, c, sim, append(ids, orig.ID)
}

// wantGraphUndone checks that users 0 and 1 hold E3 again with the plans
// they had off before (none, Teams), users 2 and 3 hold nothing, in the
// directory and its mirror, with two seats of E3 taken.
func wantGraphUndone(t *testing.T, b *testapp.Bundle, sim *graphsim.Server, users []string) {
	t.Helper()
	for i, want := range [][]string{nil, {"TEAMS"}} {
		u, _ := sim.User(graphTenantID, users[i])
		if !slices.Equal(u.Licenses, []string{"E3"}) || !slices.Equal(u.DisabledPlans["E3"], want) {
			t.Errorf("%s holds %v with %v off in the directory, want E3 with %v off", users[i], u.Licenses, u.DisabledPlans, want)
		}
	}
	for _, id := range users[2:] {
		if u, _ := sim.User(graphTenantID, id); len(u.Licenses) != 0 {
			t.Errorf("%s holds %v in the directory, want nothing", id, u.Licenses)
		}
	}
	wantPlansOff(t, b, "graph", "E3", "after the undo", users, []string{"", "TEAMS", "-", "-"})
	directoryMatchesPostgres(t, b, sim)
	wantSeats(t, b, "E3", 2)
	noProblems(t, b)
}
