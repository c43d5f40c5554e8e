package storage

import (
	"context"
	"encoding/json"
	"maps"
	"slices"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

// Group-based licensing (Microsoft Entra ID). The mirror of an external
// directory records, per assignment, whether it is direct and which groups
// it is inherited from (ApplyDirectorySync). An item of a user who inherits
// any license gets a groupPlan (operation_items.group_licenses): decided in
// PrepareExternal from the mirror under the user's lock, before the
// directory is called, and applied to the mirror by RecordExternal. Items
// of users who inherit nothing, and every item of a local directory, have
// none; a local directory's batches do not look for any, an external
// one's read them in one statement per batch (readBatchGroups).

// sourceJSON is the licensing.LicenseSource of assignment a as JSON, with
// the names of its groups when the last sync could read any.
const sourceJSON = `jsonb_build_object('sku_id', a.sku_id, 'direct', a.direct, 'inherited_from', a.inherited_from,
	'group_names', CASE WHEN EXISTS (SELECT 1 FROM directory_groups g WHERE g.customer_key = a.customer_key AND g.group_id = ANY(a.inherited_from))
		THEN ARRAY(SELECT COALESCE(g.display_name, '') FROM unnest(a.inherited_from) WITH ORDINALITY AS x(id, n)
			LEFT JOIN directory_groups g ON g.customer_key = a.customer_key AND g.group_id = x.id ORDER BY x.n) END)`

// groupPlan is the group side of one item.
type groupPlan struct {
	// AddDirect and RemoveDirect are direct assignments to add or remove
	// in the directory on top of the item's assigned and revoked: licenses
	// the user keeps, and keeps its seat of, through its groups.
	AddDirect    []string `json:"add_direct,omitempty"`
	RemoveDirect []string `json:"remove_direct,omitempty"`
	// Before and After are the user's inherited licenses before the change
	// and after it succeeds (licenses not listed are direct only).
	Before []licensing.LicenseSource `json:"before"`
	After  []licensing.LicenseSource `json:"after"`
	// Note is the report's remark on RemoveDirect.
	Note string `json:"note,omitempty"`
}

// batchGroups is what PrepareExternal reads about groups for a batch: the
// users' inherited licenses by SKU, and the plans recorded for items
// already applying.
type batchGroups struct {
	sources map[string]map[string]licensing.LicenseSource
	plans   map[string]*groupPlan
}

// readBatchGroups reads, in one statement, the inherited licenses of the
// batch's users and the group plans of its items. Only users with any are
// returned.
func readBatchGroups(ctx context.Context, tx *sqlx.Tx, plan *Plan, userIDs []string) (batchGroups, error) {
	var rows []struct {
		UserID  string  `db:"user_id"`
		Sources []byte  `db:"sources"`
		Plan    *[]byte `db:"plan"`
	}
	// Each user is looked up by key (LATERAL; LIMIT 1 keeps Postgres from
	// flattening the item's lookup into a join), whatever the statistics:
	// joined, it hashed every item of the operation and every inherited
	// license of the customer for each batch, 3-5 ms for 256 users of a
	// 5,000-user operation and growing with it; by key, 1.5 ms.
	err := tx.SelectContext(ctx, &rows, `
		SELECT x.id AS user_id, COALESCE(s.sources, '[]') AS sources, i.group_licenses AS plan
		FROM unnest($3::text[]) AS x(id)
		CROSS JOIN LATERAL (SELECT group_licenses FROM operation_items WHERE operation_id = $1 AND user_id = x.id LIMIT 1) i
		CROSS JOIN LATERAL (SELECT jsonb_agg(`+sourceJSON+` ORDER BY a.sku_id) AS sources
			FROM assignments a WHERE a.customer_key = $2 AND a.user_id = x.id AND a.inherited_from <> '{}') s
		WHERE i.group_licenses IS NOT NULL OR s.sources IS NOT NULL`,
		plan.ID, plan.CustomerKey, pq.StringArray(userIDs))
	bg := batchGroups{sources: map[string]map[string]licensing.LicenseSource{}, plans: map[string]*groupPlan{}}
	if err != nil {
		return bg, err
	}
	for _, r := range rows {
		var list []licensing.LicenseSource
		if err := json.Unmarshal(r.Sources, &list); err != nil {
			return bg, err
		}
		if len(list) > 0 {
			m := make(map[string]licensing.LicenseSource, len(list))
			for _, s := range list {
				m[s.SKU] = s
			}
			bg.sources[r.UserID] = m
		}
		if r.Plan != nil {
			var gp groupPlan
			if err := json.Unmarshal(*r.Plan, &gp); err != nil {
				return bg, err
			}
			bg.plans[r.UserID] = &gp
		}
	}
	return bg, nil
}

// inheritedSources reads the licenses the users inherit from groups, by
// user and SKU, for a preview. A local directory has none and is not asked.
func inheritedSources(ctx context.Context, q sqlx.QueryerContext, c licensing.Customer, userIDs []string) (map[string]map[string]licensing.LicenseSource, error) {
	out := map[string]map[string]licensing.LicenseSource{}
	if c.Directory.Kind == licensing.DirectoryLocal {
		return out, nil
	}
	var rows []struct {
		UserID string `db:"user_id"`
		Source []byte `db:"source"`
	}
	if err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT a.user_id, `+sourceJSON+` AS source FROM assignments a
		WHERE a.customer_key = $1 AND a.user_id = ANY($2::text[]) AND a.inherited_from <> '{}'`, c.Key, pq.StringArray(userIDs)); err != nil {
		return nil, err
	}
	for _, r := range rows {
		var src licensing.LicenseSource
		if err := json.Unmarshal(r.Source, &src); err != nil {
			return nil, err
		}
		if out[r.UserID] == nil {
			out[r.UserID] = map[string]licensing.LicenseSource{}
		}
		out[r.UserID][src.SKU] = src
	}
	return out, nil
}

// decideWithGroups decides an item of a user who may inherit licenses
// from groups (sources, by SKU). The product rules judge the licenses the
// user will hold, and a license the change revokes that the user inherits
// stays held: the directory removes only a direct assignment, or refuses.
// So an add-on that requires it does not fail DependencyViolation; then
// decideGroups decides the revoke itself. A direct assignment is added on
// top of an inherited license only where the change assigns it to this
// user (not for a replace whose source the user lacks).
func decideWithGroups(plan *Plan, it lockedItem, sources map[string]licensing.LicenseSource) (itemWrite, *groupPlan) {
	// The change as it applies to this user: a replace's targets only
	// where it holds the source, an exact copy's revokes of what it holds.
	change := it.change(plan).ForHeld(it.Held)
	for _, sku := range change.Revoke {
		if sources[sku].Inherited() && slices.Contains(it.Held, sku) {
			it.KeptByGroups = append(it.KeptByGroups, sku)
		}
	}
	w := decide(plan, it)
	return w, decideGroups(&w, change.Assign, sources)
}

// decideGroups completes w, decided by the product rules, with the user's
// group-inherited licenses: a revoke of a license held only through groups
// fails with InheritedFromGroup; one held both ways removes only the direct
// assignment; an assign of one held only through groups adds a direct
// assignment. It returns the item's group plan, nil when the user inherits
// nothing.
func decideGroups(w *itemWrite, assign []string, sources map[string]licensing.LicenseSource) *groupPlan {
	if len(sources) == 0 {
		return nil
	}
	gp := &groupPlan{Before: sortedSources(sources)}
	gp.After = gp.Before
	if w.status != licensing.ItemSucceeded && w.status != licensing.ItemWouldRevoke {
		return gp
	}
	gc, lerr := licensing.CheckGroups(&w.result, assign, sources)
	if lerr != nil {
		w.status, w.code, w.message = licensing.ItemFailed, lerr.Code, lerr.Message
		w.result, w.location, w.locationBefore = licensing.Result{}, "", nil
		return gp
	}
	gp.AddDirect, gp.RemoveDirect, gp.Note = gc.AddDirect, gc.RemoveDirect, gc.Note
	after := make(map[string]licensing.LicenseSource, len(sources))
	for sku, s := range sources {
		switch {
		case slices.Contains(gc.AddDirect, sku):
			s.Direct = true
		case slices.Contains(gc.RemoveDirect, sku):
			s.Direct = false
		}
		after[sku] = s
	}
	gp.After = sortedSources(after)
	return gp
}

// changesDirectory reports whether the plan has direct assignments to change.
func (gp *groupPlan) changesDirectory() bool {
	return gp != nil && len(gp.AddDirect)+len(gp.RemoveDirect) > 0
}

func sortedSources(m map[string]licensing.LicenseSource) []licensing.LicenseSource {
	out := make([]licensing.LicenseSource, 0, len(m))
	for _, sku := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[sku])
	}
	return out
}

// writeGroupPlans records the group plans of a batch's items.
func writeGroupPlans(ctx context.Context, tx *sqlx.Tx, plan *Plan, plans map[string]*groupPlan) error {
	if len(plans) == 0 {
		return nil
	}
	users, docs := make([]string, 0, len(plans)), make([]string, 0, len(plans))
	for u, gp := range plans {
		b, err := json.Marshal(gp)
		if err != nil {
			return err
		}
		users, docs = append(users, u), append(docs, string(b))
	}
	_, err := tx.ExecContext(ctx, `
		UPDATE operation_items i SET group_licenses = x.doc::jsonb
		FROM unnest($2::text[], $3::text[]) AS x(u, doc)
		WHERE i.operation_id = $1 AND i.user_id = x.u`, plan.ID, pq.StringArray(users), pq.StringArray(docs))
	return err
}

// applyGroupPlans makes the mirror follow the direct assignments that the
// directory added or removed for the users that succeeded with any: the row
// stays (the license is still held, with its seat), only direct changes.
func applyGroupPlans(ctx context.Context, tx *sqlx.Tx, plan *Plan, succeeded []string) error {
	if len(succeeded) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `
		UPDATE assignments a SET direct = x.direct
		FROM (
			SELECT i.user_id, s.sku, false AS direct FROM operation_items i
			CROSS JOIN jsonb_array_elements_text(COALESCE(i.group_licenses->'remove_direct', '[]')) AS s(sku)
			WHERE i.operation_id = $1 AND i.user_id = ANY($3::text[]) AND i.group_licenses IS NOT NULL
			UNION ALL
			SELECT i.user_id, s.sku, true FROM operation_items i
			CROSS JOIN jsonb_array_elements_text(COALESCE(i.group_licenses->'add_direct', '[]')) AS s(sku)
			WHERE i.operation_id = $1 AND i.user_id = ANY($3::text[]) AND i.group_licenses IS NOT NULL
		) x
		WHERE a.customer_key = $2 AND a.user_id = x.user_id AND a.sku_id = x.sku`,
		plan.ID, plan.CustomerKey, pq.StringArray(succeeded))
	return err
}
