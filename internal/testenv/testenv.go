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
// The private servers keep their data under /dev/shm when it is a tmpfs with
// room (creating a database there takes about 12 ms instead of 250 ms on
// a disk), else under $TMPDIR. When running as root, initdb and postgres run
// as the postgres user. The servers are in a process group of their own and
// get a parent-death signal, so they die with the test binary even when it is
// killed or times out; temporary directories that such a binary leaves behind
// are removed by the next test binary that starts a server.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// installHint ends the message of every failure caused by a missing binary.
const installHint = `run "make test", which installs Debian's postgresql and redis-server`

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

// tmpRoot is the temporary directory holding the data of the servers of this
// test binary. It is created on first use and holds a lock file, flocked for
// the life of the binary, that tells live directories from stale ones.
type tmpRoot struct {
	mu      sync.Mutex
	dir     string
	err     error
	lock    *os.File
	removed bool
}

var tmp tmpRoot

const tmpPrefix = "licenseops-testenv-"

// get returns the directory, creating it (and removing stale ones) first.
func (r *tmpRoot) get() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removed {
		return "", errors.New("testenv: the tests have ended")
	}
	if r.dir != "" || r.err != nil {
		return r.dir, r.err
	}
	removeStale()
	r.dir, r.lock, r.err = makeRoot()
	return r.dir, r.err
}

// shmDir is a memory file system, where Postgres creates databases many
// times faster than on a disk.
const shmDir = "/dev/shm"

// tmpParents returns where the directory may go, best first: $TMPDIR when it
// is set; else /dev/shm when it is a tmpfs with at least 1 GiB free (Docker
// gives containers 64 MiB); then the usual temporary directory.
func tmpParents() []string {
	if os.Getenv("TMPDIR") != "" {
		return []string{os.TempDir()}
	}
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	if syscall.Statfs(shmDir, &st) == nil && st.Type == tmpfsMagic && uint64(st.Bavail)*uint64(st.Bsize) >= 1<<30 {
		return []string{shmDir, os.TempDir()}
	}
	return []string{os.TempDir()}
}

func makeRoot() (string, *os.File, error) {
	var dir string
	var err error
	for _, parent := range tmpParents() {
		dir, err = os.MkdirTemp(parent, fmt.Sprintf("%s%d-", tmpPrefix, os.Getpid()))
		if err == nil {
			break
		}
	}
	if err != nil {
		return "", nil, fmt.Errorf("testenv: %w", err)
	}
	// The lock is taken before the file gets the name removeStale looks
	// for, so that a directory is never seen unlocked while it is alive.
	f, err := os.Create(filepath.Join(dir, "lock.new"))
	if err == nil {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			err = os.Rename(f.Name(), filepath.Join(dir, "lock"))
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("testenv: lock %s: %w", dir, err)
	}
	return dir, f, nil
}

// removeStale removes the directories of test binaries that died without
// cleaning up: their lock is no longer held.
func removeStale() {
	var dirs []string
	for _, parent := range []string{shmDir, os.TempDir()} {
		m, _ := filepath.Glob(filepath.Join(parent, tmpPrefix+"*"))
		dirs = append(dirs, m...)
	}
	for _, d := range dirs {
		f, err := os.Open(filepath.Join(d, "lock"))
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.RemoveAll(d)
		}
		f.Close()
	}
}

// remove deletes the directory; the servers must have been stopped.
func (r *tmpRoot) remove() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removed = true
	if r.dir == "" {
		return nil
	}
	err := os.RemoveAll(r.dir)
	r.lock.Close()
	if err != nil {
		return fmt.Errorf("remove %s: %w", r.dir, err)
	}
	return nil
}

// postgresUser returns the credentials to run initdb and postgres with: nil
// unless we are root, which both refuse to run as.
func postgresUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("testenv: running as root, which initdb and postgres refuse, and there is no postgres user to run them as (%v); %s", err, installHint)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("testenv: user postgres has uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// mkdirFor creates dir, owned by cred's user when cred is set.
func mkdirFor(dir string, cred *syscall.Credential) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if cred != nil {
		return os.Chown(dir, int(cred.Uid), int(cred.Gid))
	}
	return nil
}

// serverEnv is the environment of the server processes: ours without the
// libpq variables, which would change what initdb and postgres do.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}
