package storage

import (
	"context"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

// ExternalItem is one user of an operation on an external directory, after
// the first phase (PrepareExternal).
type ExternalItem struct {
	UserID string
	// Outcome is set when no directory call is needed: the item was already
	// final (a redelivery), failed a rule or found no seat, or changes nothing.
	Outcome *ItemOutcome
	// Busy means another operation is changing this user in the directory
	// right now; the item stays pending and should be retried later.
	Busy bool
	// Wait means the item is short of a seat that an unfinished item of its
	// operation may leave unused; it stays pending and should be retried
	// shortly (see ItemOutcome.Wait).
	Wait bool
	// Add, Remove and Location are the change to make in the directory.
	Add, Remove []string
	Location    string
	// Update are held SKUs whose disabled plans change: assigned again
	// with their plans, which Graph takes as an update of the license.
	Update []string
	// DisabledPlans are the plans to switch off by SKU of Add and Update
	// (the item's change's; a SKU without an entry has every plan on).
	DisabledPlans map[string][]string
	// Resumed means the item was already 'applying': an earlier attempt may
	// have changed the directory before it died, so ask the directory first.
	Resumed bool
	// AddDirect and RemoveDirect are direct assignments of licenses the
	// user keeps through a group (group-based licensing): added or removed
	// in the same directory call, with no seat of their own. The directory
	// lists them as held before and after, so a resumed call sends them
	// whatever it reads.
	AddDirect, RemoveDirect []string
}

// PrepareExternal is the first phase of an item on an external directory,
// in one short transaction: decide by the rules on the mirror of the
// directory, reserve the seats, claim the user and mark the item
// 'applying'. The directory is called after commit, so no row lock is held
// across the network. An item already 'applying' (a retry, or a worker that
// died during the call) is returned with its recorded plan to resume.
func (s *Store) PrepareExternal(ctx context.Context, plan *Plan, userIDs []string) ([]ExternalItem, error) {
	var out []ExternalItem
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		items, err := lockItems(ctx, tx, plan, userIDs)
		if err != nil {
			return err
		}
		groups, err := readBatchGroups(ctx, tx, plan, userIDs)
		if err != nil {
			return err
		}
		newPlans := map[string]*groupPlan{}
		out = make([]ExternalItem, 0, len(items))
		var decided, applying []itemWrite
		for _, it := range items {
			switch {
			case it.Status == licensing.ItemApplying:
				change := it.change(plan)
				x := ExternalItem{UserID: it.UserID, Add: it.Assigned, Remove: it.Revoked, Location: change.UsageLocation, Resumed: true,
					Update: it.PlansChanged, DisabledPlans: change.DisabledPlans}
				if gp := groups.plans[it.UserID]; gp != nil {
					x.AddDirect, x.RemoveDirect = gp.AddDirect, gp.RemoveDirect
				}
				out = append(out, x)
			case it.Status != licensing.ItemPending:
				o := recordedOutcome(it)
				out = append(out, ExternalItem{UserID: it.UserID, Outcome: &o})
			case it.Claim != nil && *it.Claim != plan.ID:
				out = append(out, ExternalItem{UserID: it.UserID, Busy: true})
			default:
				w, gp := decideWithGroups(plan, it, groups.sources[it.UserID])
				if gp != nil {
					newPlans[it.UserID] = gp
				}
				if w.status == licensing.ItemSucceeded && len(w.result.Assigned) == 0 && len(w.result.Revoked) == 0 && w.location == "" &&
					len(w.result.PlansChanged) == 0 && !gp.changesDirectory() {
					decided = append(decided, w) // nothing to change in the directory
				} else if w.status == licensing.ItemSucceeded {
					applying = append(applying, w)
				} else {
					decided = append(decided, w)
				}
			}
		}
		ptrs := make([]*itemWrite, 0, len(decided)+len(applying))
		for i := range decided {
			ptrs = append(ptrs, &decided[i])
		}
		for i := range applying {
			ptrs = append(ptrs, &applying[i])
		}
		if err := reserveSeats(ctx, tx, plan, ptrs, userIDs); err != nil {
			return err
		}
		if err := writeGroupPlans(ctx, tx, plan, newPlans); err != nil {
			return err
		}
		var ready []itemWrite
		for _, w := range applying {
			if w.wait {
				out = append(out, ExternalItem{UserID: w.userID, Wait: true})
			} else if w.status == licensing.ItemSucceeded {
				ready = append(ready, w)
			} else {
				decided = append(decided, w) // no seat
			}
		}
		if len(decided) > 0 {
			if err := writeOutcomes(ctx, tx, plan, decided); err != nil {
				return err
			}
			for _, w := range decided {
				out = append(out, ExternalItem{UserID: w.userID, Outcome: &ItemOutcome{UserID: w.userID, Status: w.status, Code: w.code, Message: w.message, Changed: true}})
			}
		}
		if len(ready) > 0 {
			if err := markApplying(ctx, tx, plan, ready); err != nil {
				return err
			}
			for _, w := range ready {
				x := ExternalItem{UserID: w.userID, Add: w.result.Assigned, Remove: w.result.Revoked, Location: w.location,
					Update: w.result.PlansChanged, DisabledPlans: w.plans}
				if gp := newPlans[w.userID]; gp != nil {
					x.AddDirect, x.RemoveDirect = gp.AddDirect, gp.RemoveDirect
				}
				out = append(out, x)
			}
		}
		return nil
	})
	return out, err
}

// markApplying records the plan of each item and claims its user.
func markApplying(ctx context.Context, tx *sqlx.Tx, plan *Plan, ws []itemWrite) error {
	n := len(ws)
	users, assigned, revoked, licenses, locs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	masks := make([]int32, n)
	befores, movedLoc := make([]string, n), make([]bool, n)
	for i, w := range ws {
		users[i], masks[i] = w.userID, w.mask
		assigned[i], revoked[i], licenses[i] = arrayLiteral(w.result.Assigned), arrayLiteral(w.result.Revoked), arrayLiteral(w.result.Licenses)
		locs[i] = w.result.UsageLocation
		// The location before is known now, under the user's lock; the
		// directory's answer is recorded later (RecordExternal keeps it).
		if w.locationBefore != nil {
			befores[i], movedLoc[i] = *w.locationBefore, true
		}
	}
	_, err := tx.ExecContext(ctx, `
		WITH claim AS (
			UPDATE users SET applying_operation = $1 WHERE customer_key = $2 AND id = ANY($3::text[])
		), started AS (
			UPDATE operations SET status = 'running', started_at = COALESCE(started_at, now()) WHERE id = $1 AND status = 'queued'
		)
		UPDATE operation_items i SET status = 'applying', granted_mask = x.mask,
			assigned = x.assigned::text[], revoked = x.revoked::text[], licenses = x.licenses::text[], usage_location = NULLIF(x.loc, ''),
			location_before = CASE WHEN x.moved THEN x.before END
		FROM unnest($3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bool[])
			AS x(u, mask, assigned, revoked, licenses, loc, before, moved)
		WHERE i.operation_id = $1 AND i.user_id = x.u`,
		plan.ID, plan.CustomerKey, pq.StringArray(users), pq.Array(masks), pq.StringArray(assigned), pq.StringArray(revoked),
		pq.StringArray(licenses), pq.StringArray(locs), pq.StringArray(befores), pq.BoolArray(movedLoc))
	if err != nil {
		return err
	}
	return markPlansChanged(ctx, tx, plan, ws)
}

// markPlansChanged records, for an operation that changes plans, the held
// SKUs whose plans each applying item updates (a retry resumes them) and
// the plans they have off now, under the user's lock (RecordExternal keeps
// them for an undo). The mirror's plans change only when the directory
// has answered.
func markPlansChanged(ctx context.Context, tx *sqlx.Tx, plan *Plan, ws []itemWrite) error {
	if !plan.changesPlans() {
		return nil
	}
	users, changed, befores, err := itemPlans(ws)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `
		UPDATE operation_items i SET plans_changed = x.c::text[], plans_before = NULLIF(x.b, '')::jsonb
		FROM unnest($2::text[], $3::text[], $4::text[]) AS x(u, c, b)
		WHERE i.operation_id = $1 AND i.user_id = x.u`, plan.ID, pq.StringArray(users), pq.StringArray(changed), pq.StringArray(befores))
	return err
}

// ExternalResult is what the directory said for one applying item: nil
// Err for success, else the permanent per-user failure.
type ExternalResult struct {
	UserID string
	Err    *licensing.Error
	// GroupChange is set when the item had direct assignments of
	// group-inherited licenses to add or remove (ExternalItem.AddDirect,
	// RemoveDirect), so that only then the mirror's are updated.
	GroupChange bool
}

// RecordExternal is the second phase: it records the directory's answer for
// items still 'applying' — on success the mirror of the directory and the
// item, on a permanent failure the failed item (its seats return at
// settlement) — and releases the users' claims. Recording an item twice
// changes nothing.
func (s *Store) RecordExternal(ctx context.Context, plan *Plan, results []ExternalResult) ([]ItemOutcome, error) {
	byUser := make(map[string]*licensing.Error, len(results))
	ids := make([]string, len(results))
	groupChange := map[string]bool{}
	for i, r := range results {
		byUser[r.UserID], ids[i] = r.Err, r.UserID
		if r.GroupChange {
			groupChange[r.UserID] = true
		}
	}
	var out []ItemOutcome
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		items, err := lockItems(ctx, tx, plan, ids)
		if err != nil {
			return err
		}
		var ws []itemWrite
		for _, it := range items {
			if it.Status != licensing.ItemApplying {
				out = append(out, recordedOutcome(it))
				continue
			}
			w := itemWrite{userID: it.UserID, mask: it.Mask, held: it.Held, status: licensing.ItemSucceeded,
				result: licensing.Result{Assigned: it.Assigned, Revoked: it.Revoked, Licenses: it.Licenses, PlansChanged: it.PlansChanged},
				plans:  it.change(plan).DisabledPlans, plansBefore: it.PlansBefore}
			if it.ItemLocation != nil {
				w.result.UsageLocation = *it.ItemLocation
				if loc := it.change(plan).UsageLocation; loc != "" {
					w.location, w.locationBefore = loc, it.LocationBefore
				}
			}
			if e := byUser[it.UserID]; e != nil {
				w.status, w.code, w.message, w.result, w.location = licensing.ItemFailed, e.Code, e.Message, licensing.Result{}, ""
			}
			ws = append(ws, w)
		}
		if len(ws) == 0 {
			return nil
		}
		if err := writeOutcomes(ctx, tx, plan, ws); err != nil {
			return err
		}
		var regrouped []string
		for _, w := range ws {
			if w.status == licensing.ItemSucceeded && groupChange[w.userID] {
				regrouped = append(regrouped, w.userID)
			}
		}
		if err := applyGroupPlans(ctx, tx, plan, regrouped); err != nil {
			return err
		}
		for _, w := range ws {
			out = append(out, ItemOutcome{UserID: w.userID, Status: w.status, Code: w.code, Message: w.message, Changed: true})
		}
		return nil
	})
	return out, err
}
