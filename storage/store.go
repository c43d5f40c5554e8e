// Package storage is licenseops' Postgres layer: embedded migrations, the
// queries behind the API, seat reservation and settlement, and the per-user
// work of the license pipeline. Postgres is the source of truth; nothing here
// depends on Redis.
package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/licenseops/licenseops/licensing"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store is the handle on the licenseops database. It is safe for concurrent use.
type Store struct {
	db *sqlx.DB
}

// Config tunes the connection pool.
type Config struct {
	URL string
	// MaxOpenConns bounds connections; workers need about one per concurrent batch.
	MaxOpenConns int
}

// Open connects to Postgres and checks that it answers. It does not migrate.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	db, err := sqlx.Open("postgres", cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	maxOpen := cfg.MaxOpenConns
	if maxOpen <= 0 {
		maxOpen = 20
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxOpen)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close() // nothing is open yet; the ping's error is the one to report
		if pqCode(err) == "3D000" {
			return nil, fmt.Errorf("connect to postgres: %w (%v)", ErrNoDatabase, err)
		}
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the pool.
func (s *Store) Close() error { return s.db.Close() }

// Ping reports whether Postgres answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func (s *Store) migrator() (*goose.Provider, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	// The session lock makes concurrent `licenseops migrate` runs (one per
	// replica at deploy time) safe: one migrates, the others wait and find nothing to do.
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectPostgres, s.db.DB, sub, goose.WithSessionLocker(locker))
}

// Migrate applies every pending migration and returns the schema version.
func (s *Store) Migrate(ctx context.Context) (int64, error) {
	p, err := s.migrator()
	if err != nil {
		return 0, err
	}
	if _, err := p.Up(ctx); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	return p.GetDBVersion(ctx)
}

// CheckMigrated returns a licensing.Error with CodeNotMigrated when the
// schema is missing or behind this binary, so that api and worker refuse to
// start against a database they would corrupt or fail on.
func (s *Store) CheckMigrated(ctx context.Context) error {
	p, err := s.migrator()
	if err != nil {
		return err
	}
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return err
	}
	if current < target {
		return licensing.Errorf(licensing.CodeNotMigrated,
			"the database schema is at version %d but this binary needs %d; run `licenseops migrate` first", current, target)
	}
	return nil
}

// MigrateURL opens url, migrates it and closes it: the shape test harnesses want.
func MigrateURL(url string) error {
	ctx := context.Background()
	s, err := Open(ctx, Config{URL: url, MaxOpenConns: 2})
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.Migrate(ctx)
	return err
}

// inTx runs fn in a transaction, committing on success.
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// notFound is the one 404 of the storage layer: foreign and missing objects
// are indistinguishable by design.
func notFound(kind, id string) error {
	return licensing.Errorf(licensing.CodeNotFound, "%s %q was not found; check the ID and that it belongs to your partner account", kind, id)
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// pqCode returns the SQLSTATE of a Postgres error, or "".
func pqCode(err error) string {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return string(pe.Code)
	}
	return ""
}

// IsRetryable reports whether err is a transient database condition
// (deadlock, serialization failure, lost connection, shutdown) after which
// the same work may simply run again.
func IsRetryable(err error) bool {
	switch pqCode(err) {
	case "40001", "40P01", "57P01", "57P02", "57P03", "08000", "08003", "08006":
		return true
	}
	return errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn)
}
