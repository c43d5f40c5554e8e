package localdb

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/lib/pq"
)

// StartPostgres creates a new cluster with initdb in the folder pg of d and
// starts Postgres on it, on a free port of 127.0.0.1, and waits until it
// accepts connections. The role postgres may connect without a password
// (see PostgresURL). The server is tuned for throwaway data: no fsync, no
// synchronous commit, no full-page writes. args are appended to the usual
// command line (for example "-c", "max_connections=500").
//
// When running as root, which initdb and postgres refuse, they run as the
// postgres user. The server gets SIGQUIT (immediate shutdown) when this
// process dies.
func StartPostgres(ctx context.Context, d *Dir, args ...string) (*Server, error) {
	initdb, postgres, err := findPostgres()
	if err != nil {
		return nil, err
	}
	cred, err := postgresUser()
	if err != nil {
		return nil, err
	}
	if cred != nil {
		// The postgres user needs to reach the directories below.
		if err := reachable(filepath.Dir(d.path), cred); err != nil {
			return nil, err
		}
		if err := os.Chown(d.path, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("localdb: %w", err)
		}
	}
	dir := filepath.Join(d.path, "pg")
	data := filepath.Join(dir, "data")
	sock := filepath.Join(dir, "sock")
	for _, d := range []string{dir, sock} {
		if err := mkdirFor(d, cred); err != nil {
			return nil, fmt.Errorf("localdb: %w", err)
		}
	}
	// #nosec G204 -- initdb is the binary findPostgres found; the arguments are ours
	cmd := exec.CommandContext(ctx, initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C")
	cmd.Dir = dir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = sysProcAttr(cred, syscall.SIGKILL)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) } // its group
	if out, err := run(cmd); err != nil {
		return nil, fmt.Errorf("localdb: %s: %v\n%s", initdb, err, tail(out, 20))
	}
	if len(sock)+len("/.s.PGSQL.65535") >= 108 {
		sock = "" // too long for a Unix socket address: TCP only
	}

	return startOwned(ctx, func(addr string, port int) *Server {
		admin := PostgresURL(addr, "postgres")
		return &Server{
			kind: "postgres",
			addr: addr,
			path: postgres,
			args: append([]string{
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
			}, args...),
			cred:    cred,
			dir:     dir,
			logPath: filepath.Join(dir, "postgres.log"),
			stopSig: syscall.SIGINT, // fast shutdown
			// Immediate shutdown: unlike SIGKILL, it lets the
			// postmaster kill its backends and remove its
			// shared memory.
			deathSig: syscall.SIGQUIT,
			ready:    func(ctx context.Context) error { return PingPostgres(ctx, admin) },
		}
	})
}

// PostgresURL returns the URL of database on the private Postgres server at
// addr (host:port), for the role postgres:
// postgres://postgres@ADDR/DATABASE?sslmode=disable.
func PostgresURL(addr, database string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: addr, Path: "/" + database, RawQuery: "sslmode=disable"}
	return u.String()
}

// PingPostgres connects to the database at dsn (a postgres:// URL) and
// disconnects.
func PingPostgres(ctx context.Context, dsn string) error {
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
	return "", "", fmt.Errorf("localdb: initdb and postgres not found in PATH or /usr/lib/postgresql/*/bin: %s", InstallHint)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// postgresUser returns the credentials to run initdb and postgres with: nil
// unless we are root, which both refuse to run as.
func postgresUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("localdb: running as root, which initdb and postgres refuse, and there is no postgres user to run them as (%v); %s", err, InstallHint)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("localdb: user postgres has uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// reachable checks that cred's user may search dir and the directories above
// it (by their mode bits: ACLs are not considered).
func reachable(dir string, cred *syscall.Credential) error {
	for d := dir; ; d = filepath.Dir(d) {
		var st syscall.Stat_t
		if err := syscall.Stat(d, &st); err != nil {
			return fmt.Errorf("localdb: %w", err)
		}
		bit := uint32(0o001)
		switch {
		case st.Uid == cred.Uid:
			bit = 0o100
		case st.Gid == cred.Gid:
			bit = 0o010
		}
		if st.Mode&bit == 0 {
			return fmt.Errorf("localdb: initdb and postgres run as the postgres user (since we are root), which may not enter %s (mode %o): choose a folder they can reach", d, st.Mode&0o777)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
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
