package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/licenseops/licenseops/internal/localdb"
)

// Postgres returns the URL of a database of its own for t, created empty of
// data but with the schema that migrate builds, and dropped (WITH (FORCE))
// when t ends.
//
// The first call of the test binary starts the private server (or connects to
// TEST_DATABASE_URL) and creates a template database, calling migrate with its
// URL; migrate runs once per test binary, so every call must pass the same
// function. Each call then clones the template with CREATE DATABASE ...
// TEMPLATE, which is fast. migrate must close its connections before it
// returns; testenv ends any it leaves open, since cloning needs a template
// nobody is connected to.
//
// When the binaries are missing, Postgres fails t, saying how to install them.
func Postgres(t testing.TB, migrate func(url string) error) string {
	t.Helper()
	checkRun(t)
	if err := pg.start(); err != nil {
		t.Fatal(err)
	}
	if err := pg.template(migrate); err != nil {
		t.Fatal(err)
	}
	name := dbName(t.Name(), pg.seq.Add(1))
	q := pq.QuoteIdentifier(name)
	// Postgres refuses to clone a template that another CREATE DATABASE
	// is reading (it counts as a user of the template).
	pg.createMu.Lock()
	err := pg.exec("CREATE DATABASE " + q + " TEMPLATE " + pq.QuoteIdentifier(pg.tplName))
	pg.createMu.Unlock()
	if err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if !pg.srv.Running() {
			t.Logf("testenv: database %s not dropped: the Postgres server is not running", name)
			return
		}
		if err := pg.exec("DROP DATABASE IF EXISTS " + q + " WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	return pg.dbURL(name)
}

// PostgresServer returns the Postgres server of the test binary, starting it
// if needed, for fault tests. When t ends, the server is started again if it
// is stopped and the arguments given to SetArgs are dropped.
func PostgresServer(t testing.TB) *Server {
	t.Helper()
	return faultServer(t, &pg)
}

type pgEnv struct {
	lazy

	// Set by start.
	admin   *url.URL // maintenance database: "postgres" for ours
	tplName string

	dbMu sync.Mutex
	db   *sql.DB // pool on admin; nil until used and after a restart

	tplMu      sync.Mutex
	tplDone    bool
	tplErr     error
	tplCreated bool

	createMu sync.Mutex
	seq      atomic.Int64
}

var pg pgEnv

func (e *pgEnv) start() error { return e.startOnce(e.startServer) }

func (e *pgEnv) startServer() error {
	e.tplName = "licenseops_tpl_" + runID
	if os.Getenv("TEST_DATABASE_URL") != "" {
		ping := func(ctx context.Context, u *url.URL) error { return localdb.PingPostgres(ctx, u.String()) }
		var err error
		e.admin, e.srv, err = external("TEST_DATABASE_URL", "postgres", "5432", ping, "postgres", "postgresql")
		return err
	}
	srv, err := startPrivate(localdb.StartPostgres)
	if err != nil {
		return err
	}
	srv.OnChange(e.resetDB)
	e.srv = srv
	e.admin, err = url.Parse(localdb.PostgresURL(srv.Addr(), "postgres"))
	return err
}

// template creates the template database, once.
func (e *pgEnv) template(migrate func(string) error) error {
	e.tplMu.Lock()
	defer e.tplMu.Unlock()
	if !e.tplDone {
		e.tplDone = true
		e.tplErr = errors.New("testenv: migrate of the template database panicked")
		e.tplErr = e.buildTemplate(migrate)
	}
	return e.tplErr
}

func (e *pgEnv) buildTemplate(migrate func(string) error) error {
	if migrate == nil {
		return errors.New("testenv: Postgres needs a migrate function")
	}
	q := pq.QuoteIdentifier(e.tplName)
	if err := e.exec("CREATE DATABASE " + q); err != nil {
		return fmt.Errorf("testenv: create template database %s: %w", e.tplName, err)
	}
	e.tplCreated = true
	if err := migrate(e.dbURL(e.tplName)); err != nil {
		return fmt.Errorf("testenv: migrate template database %s: %w", e.tplName, err)
	}
	// Cloning needs a template nobody is connected to: forbid new
	// connections and end those migrate left open. (CREATE DATABASE waits a
	// few seconds for the ended ones to go away.)
	if err := e.exec("ALTER DATABASE " + q + " ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("testenv: template database %s: %w", e.tplName, err)
	}
	if err := e.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", e.tplName); err != nil {
		return fmt.Errorf("testenv: template database %s: %w", e.tplName, err)
	}
	return nil
}

// dbURL returns the URL of database name on the server.
func (e *pgEnv) dbURL(name string) string {
	u := *e.admin
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// exec runs an administrative statement on the maintenance database.
func (e *pgEnv) exec(query string, args ...any) error {
	e.dbMu.Lock()
	if e.db == nil {
		db, err := sql.Open("postgres", e.admin.String())
		if err != nil {
			e.dbMu.Unlock()
			return err
		}
		db.SetMaxIdleConns(4)
		e.db = db
	}
	db := e.db
	e.dbMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := db.ExecContext(ctx, query, args...)
	return err
}

// resetDB drops the pool, whose connections a restart has broken.
func (e *pgEnv) resetDB() {
	e.dbMu.Lock()
	db := e.db
	e.db = nil
	e.dbMu.Unlock()
	if db != nil {
		_ = db.Close() // its connections are broken anyway
	}
}

func (e *pgEnv) shutdown() error {
	srv := e.close()
	if srv == nil {
		return nil
	}
	var errs []error
	e.tplMu.Lock()
	if !srv.Owned() && e.tplCreated {
		if err := e.exec("DROP DATABASE IF EXISTS " + pq.QuoteIdentifier(e.tplName) + " WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Errorf("drop template database %s: %w", e.tplName, err))
		}
	}
	e.tplMu.Unlock()
	e.resetDB()
	if srv.Owned() {
		if err := srv.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dbName returns a database name for the n-th database of the binary, for the
// test called test: unique, readable and at most 63 bytes (longer names are
// truncated by Postgres).
func dbName(test string, n int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "t_%s_%d_", runID, n)
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 63 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
