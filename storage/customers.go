package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

const customerColumns = `customer_key, partner_key, id, name, default_usage_location, directory_kind, COALESCE(directory_tenant_id, ''), created_at`

func scanCustomer(row interface{ Scan(...any) error }) (licensing.Customer, error) {
	var c licensing.Customer
	err := row.Scan(&c.Key, &c.PartnerKey, &c.ID, &c.Name, &c.DefaultUsageLocation, &c.Directory.Kind, &c.Directory.TenantID, &c.CreatedAt)
	return c, err
}

// CreateCustomer creates a customer; an existing ID within the partner is a conflict.
func (s *Store) CreateCustomer(ctx context.Context, partnerKey int64, c licensing.Customer) (licensing.Customer, error) {
	row := s.db.QueryRowContext(ctx, `
		INSERT INTO customers (partner_key, id, name, default_usage_location, directory_kind, directory_tenant_id)
		VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''))
		ON CONFLICT (partner_key, id) DO NOTHING
		RETURNING `+customerColumns,
		partnerKey, c.ID, c.Name, c.DefaultUsageLocation, c.Directory.Kind, c.Directory.TenantID)
	out, err := scanCustomer(row)
	if isNoRows(err) {
		return licensing.Customer{}, licensing.Errorf(licensing.CodeConflict,
			"customer %q already exists; choose another ID or update the existing customer with PATCH /v1/customers/%s", c.ID, url.PathEscape(c.ID))
	}
	return out, err
}

// GetCustomer finds a customer of the partner; a foreign or missing one is NotFound.
func (s *Store) GetCustomer(ctx context.Context, partnerKey int64, id string) (licensing.Customer, error) {
	c, err := scanCustomer(s.db.QueryRowContext(ctx,
		`SELECT `+customerColumns+` FROM customers WHERE partner_key = $1 AND id = $2`, partnerKey, id))
	if isNoRows(err) {
		return licensing.Customer{}, notFound("customer", id)
	}
	return c, err
}

// CustomerUpdate is a change to a customer's name or default usage
// location; what it leaves unset keeps its value.
type CustomerUpdate struct {
	Name *string
	// SetDefaultUsageLocation says whether DefaultUsageLocation applies:
	// a country code, or nil to clear the default.
	SetDefaultUsageLocation bool
	DefaultUsageLocation    *string
}

// UpdateCustomer changes a customer of the partner; a foreign or missing one
// is NotFound. Operations already accepted keep the default usage location
// they were taken with.
func (s *Store) UpdateCustomer(ctx context.Context, partnerKey int64, id string, u CustomerUpdate) (licensing.Customer, error) {
	c, err := scanCustomer(s.db.QueryRowContext(ctx, `
		UPDATE customers SET name = COALESCE($3::text, name),
			default_usage_location = CASE WHEN $4::bool THEN $5::text ELSE default_usage_location END
		WHERE partner_key = $1 AND id = $2
		RETURNING `+customerColumns,
		partnerKey, id, u.Name, u.SetDefaultUsageLocation, u.DefaultUsageLocation))
	if isNoRows(err) {
		return licensing.Customer{}, notFound("customer", id)
	}
	return c, err
}

// ListCustomers lists the partner's customers by ID.
func (s *Store) ListCustomers(ctx context.Context, partnerKey int64) ([]licensing.Customer, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+customerColumns+` FROM customers WHERE partner_key = $1 ORDER BY id`, partnerKey)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []licensing.Customer{}
	for rows.Next() {
		c, err := scanCustomer(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// UserImport is one row of a user import; nil fields keep the stored value
// (or take the default on insert: enabled, no location, never signed in).
type UserImport struct {
	ID                string
	UserPrincipalName string
	DisplayName       string
	UsageLocation     *string
	AccountEnabled    *bool
	LastSignInAt      *time.Time
}

// ImportUsers upserts users in one statement (arrays, not a statement per
// user) and reports how many were created and updated.
func (s *Store) ImportUsers(ctx context.Context, customerKey int64, users []UserImport) (created, updated int, err error) {
	return importUsers(ctx, s.db, customerKey, users)
}

func importUsers(ctx context.Context, q sqlx.QueryerContext, customerKey int64, users []UserImport) (created, updated int, err error) {
	n := len(users)
	ids, upns, names := make([]string, n), make([]string, n), make([]string, n)
	locs, enabled, signIn := make([]sql.NullString, n), make([]sql.NullString, n), make([]sql.NullString, n)
	for i, u := range users {
		ids[i], upns[i], names[i] = u.ID, u.UserPrincipalName, u.DisplayName
		if u.UsageLocation != nil {
			locs[i] = sql.NullString{String: *u.UsageLocation, Valid: true}
		}
		if u.AccountEnabled != nil {
			enabled[i] = sql.NullString{String: boolText(*u.AccountEnabled), Valid: true}
		}
		if u.LastSignInAt != nil {
			signIn[i] = sql.NullString{String: u.LastSignInAt.UTC().Format(time.RFC3339Nano), Valid: true}
		}
	}
	// UPDATE then INSERT rather than ON CONFLICT: an absent optional field
	// must keep the stored value, and EXCLUDED cannot tell absent from default.
	err = q.QueryRowxContext(ctx, `
		WITH x AS (
			SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::timestamptz[])
				AS x(id, upn, name, loc, enabled, sign_in)
		), upd AS (
			UPDATE users u SET user_principal_name = x.upn, display_name = x.name,
				usage_location = COALESCE(x.loc, u.usage_location),
				account_enabled = COALESCE(x.enabled, u.account_enabled),
				last_sign_in_at = COALESCE(x.sign_in, u.last_sign_in_at),
				updated_at = now()
			FROM x WHERE u.customer_key = $1 AND u.id = x.id
			RETURNING u.id
		), ins AS (
			INSERT INTO users (customer_key, id, user_principal_name, display_name, usage_location, account_enabled, last_sign_in_at)
			SELECT $1, x.id, x.upn, x.name, x.loc, COALESCE(x.enabled, true), x.sign_in
			FROM x WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.customer_key = $1 AND u.id = x.id)
			ON CONFLICT (customer_key, id) DO NOTHING
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)`,
		customerKey, pq.StringArray(ids), pq.StringArray(upns), pq.StringArray(names),
		pq.Array(locs), pq.Array(enabled), pq.Array(signIn)).Scan(&created, &updated)
	return created, updated, err
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// UserPage is one page of the user list.
type UserPage struct {
	Users []licensing.User
	Total int
}

// ListUsers returns one page of users sorted by display name, then ID,
// optionally filtered by a case-insensitive substring of the display or
// principal name.
func (s *Store) ListUsers(ctx context.Context, customerKey int64, q string, limit, offset int) (UserPage, error) {
	return s.listUsers(ctx, customerKey, nil, false, false, q, limit, offset)
}

// ListUsersWithLicenseErrors is ListUsers restricted to the users with a
// group licensing error as of the last directory sync.
func (s *Store) ListUsersWithLicenseErrors(ctx context.Context, customerKey int64, q string, limit, offset int) (UserPage, error) {
	return s.listUsers(ctx, customerKey, nil, false, true, q, limit, offset)
}

// ListUsersIn is ListUsers restricted to the users of ids (the console's
// selection).
func (s *Store) ListUsersIn(ctx context.Context, customerKey int64, ids []string, q string, limit, offset int) (UserPage, error) {
	return s.listUsers(ctx, customerKey, ids, true, false, q, limit, offset)
}

// userGroupColumns are a user's inherited licenses and group licensing
// errors as JSON arrays, NULL when there are none (u is the user).
const userGroupColumns = `
	(SELECT jsonb_agg(` + sourceJSON + ` ORDER BY a.sku_id)
		FROM assignments a WHERE a.customer_key = u.customer_key AND a.user_id = u.id AND a.inherited_from <> '{}'),
	(SELECT jsonb_agg(jsonb_build_object('sku_id', e.sku_id, 'group_id', e.group_id, 'error', e.error) ORDER BY e.sku_id, e.group_id)
		FROM user_license_errors e WHERE e.customer_key = u.customer_key AND e.user_id = u.id)`

// setGroupColumns fills the user's license sources and errors from
// userGroupColumns.
func setGroupColumns(u *licensing.User, inherited, errs []byte) error {
	if inherited != nil {
		var list []licensing.LicenseSource
		if err := json.Unmarshal(inherited, &list); err != nil {
			return err
		}
		u.LicenseSources = licensing.SourcesFor(u.Licenses, list)
	}
	if errs != nil {
		return json.Unmarshal(errs, &u.LicenseErrors)
	}
	return nil
}

func (s *Store) listUsers(ctx context.Context, customerKey int64, ids []string, restrict, errorsOnly bool, q string, limit, offset int) (UserPage, error) {
	from := "users u"
	args := []any{customerKey, likePattern(q)}
	if restrict {
		from += " JOIN unnest($3::text[]) AS x(id) ON u.id = x.id"
		args = append(args, pq.StringArray(ids))
	}
	where := " WHERE u.customer_key = $1 AND ($2 = '' OR u.display_name ILIKE $2 OR u.user_principal_name ILIKE $2)"
	if errorsOnly {
		where += " AND EXISTS (SELECT 1 FROM user_license_errors e WHERE e.customer_key = u.customer_key AND e.user_id = u.id)"
	}
	var page UserPage
	if err := s.db.GetContext(ctx, &page.Total, "SELECT count(*) FROM "+from+where, args...); err != nil {
		return page, err
	}
	n := len(args)
	rows, err := s.db.QueryContext(ctx, `
		SELECT u.id, u.user_principal_name, u.display_name, u.usage_location, u.account_enabled, u.last_sign_in_at,
			ARRAY(SELECT a.sku_id FROM assignments a WHERE a.customer_key = u.customer_key AND a.user_id = u.id ORDER BY a.sku_id),
			`+userPlansColumn+`,`+
		userGroupColumns+`
		FROM `+from+where+`
		ORDER BY u.display_name, u.id LIMIT $`+strconv.Itoa(n+1)+` OFFSET $`+strconv.Itoa(n+2), append(args, limit, offset)...)
	if err != nil {
		return page, err
	}
	defer rows.Close()
	page.Users = []licensing.User{}
	for rows.Next() {
		var u licensing.User
		var lic pq.StringArray
		var plans planMap
		var inherited, errs []byte
		if err := rows.Scan(&u.ID, &u.UserPrincipalName, &u.DisplayName, &u.UsageLocation, &u.AccountEnabled, &u.LastSignInAt, &lic, &plans,
			&inherited, &errs); err != nil {
			return page, err
		}
		u.Licenses = nonNil(lic)
		if len(plans) > 0 {
			u.DisabledPlans = plans
		}
		if err := setGroupColumns(&u, inherited, errs); err != nil {
			return page, err
		}
		page.Users = append(page.Users, u)
	}
	return page, rows.Err()
}

// likePattern is the ILIKE pattern of a substring search, "" for none.
func likePattern(q string) string {
	if q == "" {
		return ""
	}
	return "%" + likeEscaper.Replace(q) + "%"
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// GetUser returns one user with its licenses.
func (s *Store) GetUser(ctx context.Context, customerKey int64, id string) (licensing.User, error) {
	var u licensing.User
	var lic pq.StringArray
	var plans planMap
	var inherited, errs []byte
	err := s.db.QueryRowContext(ctx, `
		SELECT u.id, u.user_principal_name, u.display_name, u.usage_location, u.account_enabled, u.last_sign_in_at,
			ARRAY(SELECT a.sku_id FROM assignments a WHERE a.customer_key = u.customer_key AND a.user_id = u.id ORDER BY a.sku_id),
			`+userPlansColumn+`,`+
		userGroupColumns+`
		FROM users u WHERE u.customer_key = $1 AND u.id = $2`, customerKey, id).
		Scan(&u.ID, &u.UserPrincipalName, &u.DisplayName, &u.UsageLocation, &u.AccountEnabled, &u.LastSignInAt, &lic, &plans, &inherited, &errs)
	if isNoRows(err) {
		return u, notFound("user", id)
	}
	if err != nil {
		return u, err
	}
	u.Licenses = nonNil(lic)
	if len(plans) > 0 {
		u.DisabledPlans = plans
	}
	return u, setGroupColumns(&u, inherited, errs)
}

// SetUsageLocation updates a user's usage location.
func (s *Store) SetUsageLocation(ctx context.Context, customerKey int64, id, location string) (licensing.User, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE users SET usage_location = $3, updated_at = now() WHERE customer_key = $1 AND id = $2`, customerKey, id, location)
	if err != nil {
		return licensing.User{}, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return licensing.User{}, notFound("user", id)
	}
	return s.GetUser(ctx, customerKey, id)
}

const subscriptionColumns = `s.sku_id, COALESCE(p.name, s.sku_id) AS name, s.total, s.consumed, s.reserved,
	s.total - s.consumed - s.reserved AS available`

// ListSubscriptions lists a customer's subscriptions by SKU.
func (s *Store) ListSubscriptions(ctx context.Context, partnerKey, customerKey int64) ([]licensing.Subscription, error) {
	out := []licensing.Subscription{}
	err := s.db.SelectContext(ctx, &out, `
		SELECT `+subscriptionColumns+`,
			(SELECT count(DISTINCT e.user_id) FROM user_license_errors e WHERE e.customer_key = s.customer_key AND e.sku_id = s.sku_id) AS license_errors
		FROM subscriptions s LEFT JOIN products p ON p.partner_key = $1 AND p.sku_id = s.sku_id
		WHERE s.customer_key = $2 ORDER BY s.sku_id`, partnerKey, customerKey)
	return out, err
}

// SetSeatTotal creates a subscription or changes its total.
//
// A new subscription needs the SKU in the partner's catalog (PutProduct):
// a typo must not create seats of a product without rules. Otherwise it is
// NotFound, as an unknown object is. (Subscriptions that a directory sync
// created for SKUs outside the catalog can still be changed.)
//
// The total may not go below the seats assigned (consumed) plus those held
// by unfinished operations (reserved, granted at intake and not settled
// yet); that is refused with SeatsInUse, whose details give both and the
// minimum total. Waiting for the operations to finish releases the seats
// they will not use.
func (s *Store) SetSeatTotal(ctx context.Context, partnerKey, customerKey int64, sku string, total int) (licensing.Subscription, error) {
	var sub licensing.Subscription
	err := s.db.GetContext(ctx, &sub, `
		WITH prev AS (
			SELECT total FROM subscriptions WHERE customer_key = $2 AND sku_id = $3
		), up AS (
			INSERT INTO subscriptions AS s (customer_key, sku_id, total)
			SELECT $2, $3, $4
			WHERE EXISTS (SELECT 1 FROM products WHERE partner_key = $1 AND sku_id = $3) OR EXISTS (SELECT 1 FROM prev)
			ON CONFLICT (customer_key, sku_id) DO UPDATE SET total = EXCLUDED.total, updated_at = now()
			WHERE s.consumed + s.reserved <= EXCLUDED.total
			RETURNING s.*
		)
		SELECT `+subscriptionColumns+`, (SELECT total FROM prev) AS previous_total
		FROM up s LEFT JOIN products p ON p.partner_key = $1 AND p.sku_id = s.sku_id`,
		partnerKey, customerKey, sku, total)
	if isNoRows(err) {
		var consumed, reserved int
		err := s.db.QueryRowContext(ctx, `SELECT consumed, reserved FROM subscriptions WHERE customer_key = $1 AND sku_id = $2`,
			customerKey, sku).Scan(&consumed, &reserved)
		if isNoRows(err) {
			return sub, licensing.Errorf(licensing.CodeNotFound,
				"product %q is not in your catalog; create it first with PUT /v1/products/%s, then set its seats", sku, sku)
		}
		if err != nil {
			return sub, err
		}
		e := licensing.Errorf(licensing.CodeSeatsInUse,
			"cannot set %s to %d seats: %d are assigned and %d are held by running operations; revoke licenses or wait for the operations to finish, or choose at least %d",
			sku, total, consumed, reserved, consumed+reserved)
		e.Details = map[string]int{"consumed": consumed, "reserved": reserved, "minimum_total": consumed + reserved}
		return sub, e
	}
	return sub, err
}

// CustomerByKey finds a customer by its internal key (for tasks).
func (s *Store) CustomerByKey(ctx context.Context, key int64) (licensing.Customer, error) {
	c, err := scanCustomer(s.db.QueryRowContext(ctx, `SELECT `+customerColumns+` FROM customers WHERE customer_key = $1`, key))
	if isNoRows(err) {
		return c, notFound("customer", strconv.FormatInt(key, 10))
	}
	return c, err
}

// userPlansColumn is the disabled plans of user u's licenses with any, a
// JSON object by SKU (NULL when every plan of every license is on).
const userPlansColumn = `(SELECT jsonb_object_agg(a.sku_id, a.disabled_plans) FROM assignments a
			WHERE a.customer_key = u.customer_key AND a.user_id = u.id AND cardinality(a.disabled_plans) > 0)`
