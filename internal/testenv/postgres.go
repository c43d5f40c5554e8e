package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"
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
		if !pg.srv.running() {
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
	checkRun(t)
	if err := pg.start(); err != nil {
		t.Fatal(err)
	}
	pg.srv.restoreAtEnd(t)
	return pg.srv
}

type pgEnv struct {
	mu      sync.Mutex // guards start
	started bool
	err     error
	closed  bool

	// Set by start.
	srv     *Server
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

func (e *pgEnv) start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("testenv: the tests have ended")
	}
	if !e.started {
		e.started = true
		e.err = e.startLocked()
	}
	return e.err
}

func (e *pgEnv) startLocked() error {
	e.tplName = "licenseops_tpl_" + runID
	if s := os.Getenv("TEST_DATABASE_URL"); s != "" {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return errors.New("testenv: TEST_DATABASE_URL must be a postgres:// URL")
		}
		addr := u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "5432")
		}
		e.srv = &Server{kind: "postgres", addr: addr}
		e.admin = u
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ping(ctx, u.String()); err != nil {
			return fmt.Errorf("testenv: TEST_DATABASE_URL: %w", err)
		}
		return nil
	}

	initdb, postgres, err := findPostgres()
	if err != nil {
		return err
	}
	cred, err := postgresUser()
	if err != nil {
		return err
	}
	root, err := tmp.get()
	if err != nil {
		return err
	}
	if cred != nil {
		// The postgres user needs to reach the directories below.
		if err := os.Chown(root, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
	}
	dir := filepath.Join(root, "pg")
	data := filepath.Join(dir, "data")
	sock := filepath.Join(dir, "sock")
	for _, d := range []string{dir, sock} {
		if err := mkdirFor(d, cred); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
	}
	cmd := exec.Command(initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C")
	cmd.Dir = dir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = sysProcAttr(cred, syscall.SIGKILL)
	if out, err := run(cmd); err != nil {
		return fmt.Errorf("testenv: %s: %v\n%s", initdb, err, tail(out, 20))
	}
	if len(sock)+len("/.s.PGSQL.65535") >= 108 {
		sock = "" // too long for a Unix socket address: TCP only
	}

	srv, err := startOwned(func(port int) *Server {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		admin := &url.URL{Scheme: "postgres", User: url.User("postgres"), Host: addr, Path: "/postgres", RawQuery: "sslmode=disable"}
		return &Server{
			kind:  "postgres",
			addr:  addr,
			owned: true,
			path:  postgres,
			args: []string{
				"-D", data, "-p", strconv.Itoa(port), "-k", sock,
				"-c", "listen_addresses=127.0.0.1",
				"-c", "fsync=off",
				"-c", "synchronous_commit=off",
				"-c", "full_page_writes=off",
				"-c", "max_connections=300",
				"-c", "shared_buffers=256MB",
				// Dynamic shared memory in files of the data
				// directory, which goes away with it, rather
				// than in /dev/shm, where a killed server
				// would leave them.
				"-c", "dynamic_shared_memory_type=mmap",
			},
			cred:    cred,
			dir:     dir,
			logPath: filepath.Join(dir, "postgres.log"),
			stopSig: syscall.SIGINT, // fast shutdown
			// Immediate shutdown: unlike SIGKILL, it lets the
			// postmaster kill its backends and remove its
			// shared memory.
			deathSig: syscall.SIGQUIT,
			ready:    func(ctx context.Context) error { return ping(ctx, admin.String()) },
			onChange: e.resetDB,
		}
	})
	if err != nil {
		return err
	}
	e.srv = srv
	e.admin = &url.URL{Scheme: "postgres", User: url.User("postgres"), Host: srv.addr, Path: "/postgres", RawQuery: "sslmode=disable"}
	return nil
}

// findPostgres finds initdb and postgres in PATH, else in the highest version
// of /usr/lib/postgresql/*/bin (where Debian puts them).
func findPostgres() (initdb, postgres string, err error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if q := filepath.Join(filepath.Dir(p), "postgres"); isExecutable(q) {
			return p, q, nil
		}
		if q, err := exec.LookPath("postgres"); err == nil {
			return p, q, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) float64 {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		if err != nil {
			return -1
		}
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		p, q := filepath.Join(d, "initdb"), filepath.Join(d, "postgres")
		if isExecutable(p) && isExecutable(q) {
			return p, q, nil
		}
	}
	return "", "", fmt.Errorf("testenv: initdb and postgres not found in PATH or /usr/lib/postgresql/*/bin: %s", installHint)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// ping connects to the database at dsn.
func ping(ctx context.Context, dsn string) error {
	c, err := pq.NewConnector(dsn)
	if err != nil {
		return err
	}
	conn, err := c.Connect(ctx)
	if err != nil {
		return err
	}
	return conn.Close()
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
		db.Close()
	}
}

func (e *pgEnv) shutdown() error {
	e.mu.Lock()
	e.closed = true
	srv := e.srv
	e.mu.Unlock()
	if srv == nil {
		return nil
	}
	var errs []error
	e.tplMu.Lock()
	if !srv.owned && e.tplCreated {
		if err := e.exec("DROP DATABASE IF EXISTS " + pq.QuoteIdentifier(e.tplName) + " WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Errorf("drop template database %s: %w", e.tplName, err))
		}
	}
	e.tplMu.Unlock()
	e.resetDB()
	if srv.owned {
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
