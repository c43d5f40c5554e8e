package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

// ErrNoDatabase is returned by Open when the database named in the URL does
// not exist; CreateDatabase (`licenseops migrate`) creates it.
var ErrNoDatabase = errors.New("the database does not exist; run `licenseops migrate`, which creates it and its schema")

// CreateDatabase creates the database named in dbURL, connecting to the
// server's "postgres" database to do it.
func CreateDatabase(ctx context.Context, dbURL string) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		return err
	}
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	admin, err := Open(ctx, Config{URL: u.String(), MaxOpenConns: 1})
	if err != nil {
		return err
	}
	defer admin.Close()
	_, err = admin.db.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name))
	return err
}

// PartnerKey returns the internal key of a partner by its ID; an unknown
// partner is NotFound.
func (s *Store) PartnerKey(ctx context.Context, partnerID string) (int64, error) {
	var pk int64
	err := s.db.GetContext(ctx, &pk, `SELECT partner_key FROM partners WHERE id = $1`, partnerID)
	if isNoRows(err) {
		return 0, notFound("partner", partnerID)
	}
	return pk, err
}

// MirroredLicenses is what Postgres believes each user of a customer on an
// external directory holds, sorted, leaving out users with a change in
// flight (they differ from the directory by design until it is recorded).
func (s *Store) MirroredLicenses(ctx context.Context, customerKey int64) (map[string][]string, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT a.user_id, a.sku_id FROM assignments a JOIN users u ON u.customer_key = a.customer_key AND u.id = a.user_id
		WHERE a.customer_key = $1 AND u.applying_operation IS NULL ORDER BY a.user_id, a.sku_id`, customerKey)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	mirror := map[string][]string{}
	for rows.Next() {
		var u, sku string
		if err := rows.Scan(&u, &sku); err != nil {
			return nil, err
		}
		mirror[u] = append(mirror[u], sku)
	}
	// A read error ends Next early: the mirror would be incomplete.
	return mirror, rows.Err()
}

// MirroredSources is how Postgres believes the users of a customer on an
// external directory hold the licenses they inherit from groups, by user
// and SKU (licenses not listed are direct only), leaving out users with a
// change in flight, as MirroredLicenses does.
func (s *Store) MirroredSources(ctx context.Context, customerKey int64) (map[string]map[string]licensing.LicenseSource, error) {
	var rows []struct {
		UserID string         `db:"user_id"`
		SKU    string         `db:"sku_id"`
		Direct bool           `db:"direct"`
		Groups pq.StringArray `db:"inherited_from"`
	}
	if err := s.db.SelectContext(ctx, &rows, `
		SELECT a.user_id, a.sku_id, a.direct, a.inherited_from FROM assignments a JOIN users u ON u.customer_key = a.customer_key AND u.id = a.user_id
		WHERE a.customer_key = $1 AND u.applying_operation IS NULL AND a.inherited_from <> '{}'`, customerKey); err != nil {
		return nil, err
	}
	out := map[string]map[string]licensing.LicenseSource{}
	for _, r := range rows {
		if out[r.UserID] == nil {
			out[r.UserID] = map[string]licensing.LicenseSource{}
		}
		out[r.UserID][r.SKU] = licensing.LicenseSource{SKU: r.SKU, Direct: r.Direct, InheritedFrom: r.Groups}
	}
	return out, nil
}

// ServerVersion is the Postgres server's version, for reports.
func (s *Store) ServerVersion(ctx context.Context) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, "SELECT current_setting('server_version')").Scan(&v)
	return v, err
}

// LastItemFinishedAt is when the last item of an operation finished, by
// Postgres's clock (nil while none has).
func (s *Store) LastItemFinishedAt(ctx context.Context, opID string) (*time.Time, error) {
	var last *time.Time
	err := s.db.QueryRowContext(ctx, `SELECT max(finished_at) FROM operation_items WHERE operation_id = $1`, opID).Scan(&last)
	return last, err
}

// Quiesce vacuums and analyzes the database, then waits (up to a minute)
// until no autovacuum worker runs on it, so that a measurement that follows
// is not slowed by the cleanup of earlier work and the planner knows the
// tables' sizes. For benchmarks.
func (s *Store) Quiesce(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, "VACUUM (ANALYZE)"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var n int
		err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND datname = current_database()`).Scan(&n)
		if err != nil || n == 0 {
			return nil // pg_stat_activity may be hidden from a non-superuser: then do not wait
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}
