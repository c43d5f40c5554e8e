// Package testenv gives tests private Postgres and Redis servers.
//
// The servers are started from the machine's binaries (initdb/postgres and
// redis-server) the first time a test of the binary asks for one, and they are
// stopped, and their temporary directories removed, when the tests end. Every
// test gets its own database: Postgres clones a migrated template database,
// Redis hands out a database number of its own. Packages that use testenv must
// call Run from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Run(m) }
//
// Setting TEST_DATABASE_URL (a postgres:// URL of a role that may create
// databases) or TEST_REDIS_URL (a redis:// or rediss:// URL) makes testenv use
// that server instead of starting one; fault tests then skip (see
// Server.Owned). The Postgres databases created there carry a random suffix
// and are dropped again. Redis servers normally have only 16 databases, so with
// TEST_REDIS_URL the tests use numbers 1 to 15, locked by keys in database 0
// against the test binaries of other packages: at most 15 tests (of all the
// binaries running at once) can hold a Redis database at the same time, the
// others wait for one to be released.
//
// The private servers come from internal/localdb (which also starts them for
// the demo): their data is under /dev/shm when it is a tmpfs with room, else
// under $TMPDIR; when running as root, initdb and postgres run as the postgres
// user; they get a parent-death signal, so they die with the test binary even
// when it is killed or times out, and temporary directories that such a binary
// leaves behind are removed by the next one that starts a server.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/localdb"
)

// runCalled is set by Run: Postgres and Redis refuse to start servers that
// nothing would stop.
var runCalled atomic.Bool

// Run runs the tests of m, then stops the servers testenv started (removing
// their temporary directories) and drops the template database it created on
// a TEST_DATABASE_URL server, and exits with the tests' exit code. Call it from
// TestMain: func TestMain(m *testing.M) { testenv.Run(m) }.
func Run(m *testing.M) {
	runCalled.Store(true)
	code := m.Run()
	if err := shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func checkRun(t testing.TB) {
	t.Helper()
	if !runCalled.Load() {
		t.Fatalf("testenv: TestMain must call testenv.Run(m) (func TestMain(m *testing.M) { testenv.Run(m) }) so that the servers are stopped when the tests end")
	}
}

// shutdown stops everything testenv started. It runs once, after the tests.
func shutdown() error {
	errs := []error{pg.shutdown(), rd.shutdown()}
	errs = append(errs, tmp.remove())
	return errors.Join(errs...)
}

// runID tells apart the databases that concurrent test binaries create on
// a shared (TEST_DATABASE_URL) server.
var runID = func() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}()

// tmpRoot is the localdb.Dir holding the data of the servers of this test
// binary, made on first use.
type tmpRoot struct {
	mu      sync.Mutex
	dir     *localdb.Dir
	err     error
	removed bool
}

var tmp tmpRoot

// get returns the directory, creating it first.
func (r *tmpRoot) get() (*localdb.Dir, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removed {
		return nil, errTestsEnded
	}
	if r.dir == nil && r.err == nil {
		r.dir, r.err = localdb.NewDir("")
	}
	return r.dir, r.err
}

// remove deletes the directory; the servers must have been stopped.
func (r *tmpRoot) remove() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removed = true
	if r.dir == nil {
		return nil
	}
	return r.dir.Remove()
}

// startPrivate starts a private server with start (localdb.StartPostgres or
// localdb.StartRedis), in the data directory of the test binary.
func startPrivate(start func(context.Context, *localdb.Dir, ...string) (*Server, error)) (*Server, error) {
	dir, err := tmp.get()
	if err != nil {
		return nil, err
	}
	return start(context.Background(), dir)
}

var errTestsEnded = errors.New("testenv: the tests have ended")

// lazy is a server of the test binary and what goes with it, started on first
// use, and not after the tests have ended.
type lazy struct {
	mu      sync.Mutex
	started bool
	err     error
	closed  bool
	srv     *Server // set by the start function
}

// startOnce calls f the first time, and returns its error every time.
func (l *lazy) startOnce(f func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errTestsEnded
	}
	if !l.started {
		l.started = true
		l.err = f()
	}
	return l.err
}

// close makes startOnce fail from now on, and returns the server (nil when
// none was started).
func (l *lazy) close() *Server {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return l.srv
}

func (l *lazy) server() *Server { return l.srv }

// faultServer starts the server of env if needed and returns it, for fault
// test t; when t ends, the server is started again if it is stopped and the
// arguments given to SetArgs are dropped.
func faultServer(t testing.TB, env interface {
	start() error
	server() *Server
}) *Server {
	t.Helper()
	checkRun(t)
	if err := env.start(); err != nil {
		t.Fatal(err)
	}
	s := env.server()
	if s.Owned() {
		t.Cleanup(func() {
			if err := s.Restore(); err != nil {
				t.Errorf("testenv: restore the server at %s: %v", s.Addr(), err)
			}
		})
	}
	return s
}

// external returns the URL in the environment variable name, which must have
// one of schemes, and the server it names (on defaultPort when it names no
// port), after checking with ping that it answers.
func external(name, kind, defaultPort string, ping func(context.Context, *url.URL) error, schemes ...string) (*url.URL, *Server, error) {
	u, err := url.Parse(os.Getenv(name))
	if err != nil || !slices.Contains(schemes, u.Scheme) {
		return nil, nil, fmt.Errorf("testenv: %s must be a %s:// URL", name, strings.Join(schemes, ":// or "))
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), defaultPort)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ping(ctx, u); err != nil {
		return nil, nil, fmt.Errorf("testenv: %s: %w", name, err)
	}
	return u, localdb.External(kind, addr, name), nil
}

// Server is a server of the test binary, for fault tests that stop, kill and
// restart it (see PostgresServer and RedisServer). Stopping it affects every
// test of the binary, so such tests must not call t.Parallel.
//
// A server that comes from TEST_DATABASE_URL or TEST_REDIS_URL is not owned:
// Stop, Kill and Start return an error for it, and fault tests must check
// Owned first and t.Skip when it is false, since they never touch a server
// that testenv did not start.
type Server = localdb.Server
