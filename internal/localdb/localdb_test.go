package localdb

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq"
)

// ping sends PING to the Redis server at addr, in the inline form, and
// checks that it answers PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING: got %q", line)
	}
	return nil
}

// pgQuery runs q on the database at dsn and returns the first column of its
// first row ("" when there is none).
func pgQuery(dsn, q string) (string, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v string
	if err := db.QueryRow(q).Scan(&v); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	return v, nil
}

// serverPids returns the pids of the server processes: Redis, the postmaster
// and its children.
func serverPids(s *Servers) []int {
	pm := s.Postgres().proc.cmd.Process.Pid
	return append([]int{s.Redis().proc.cmd.Process.Pid, pm}, childrenOf(pm)...)
}

// waitGone waits (up to 15 s) until none of pids is alive.
func waitGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, p := range pids {
		for alive(p) {
			if time.Now().After(deadline) {
				t.Fatalf("server process %d is still alive", p)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// noChildren checks that this process has no live child processes.
func noChildren(t *testing.T) {
	t.Helper()
	for _, c := range childrenOf(os.Getpid()) {
		if alive(c) {
			cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c), "cmdline"))
			t.Errorf("child process %d is still alive: %s", c, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
}

func TestStartStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	dir := s.dir.Path()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("data directory: %v", err)
	}

	pgAddr, redisAddr := s.Postgres().Addr(), s.Redis().Addr()
	for _, addr := range []string{pgAddr, redisAddr} {
		if !strings.HasPrefix(addr, "127.0.0.1:") || addr == "127.0.0.1:5432" || addr == "127.0.0.1:6379" {
			t.Errorf("server address %s, want a private port of 127.0.0.1", addr)
		}
	}
	if got, want := s.PostgresURL("licenseops_demo"), "postgres://postgres@"+pgAddr+"/licenseops_demo?sslmode=disable"; got != want {
		t.Errorf("PostgresURL = %s, want %s", got, want)
	}
	if got, want := s.RedisURL(3), "redis://"+redisAddr+"/3"; got != want {
		t.Errorf("RedisURL = %s, want %s", got, want)
	}
	if !s.Postgres().Owned() || !s.Redis().Owned() || !s.Postgres().Running() || !s.Redis().Running() {
		t.Error("the servers are not owned and running")
	}

	// Postgres answers, and a database created through the postgres
	// database can be used, as the demo's migrate step does.
	if _, err := pgQuery(s.PostgresURL("postgres"), `CREATE DATABASE licenseops_demo`); err != nil {
		t.Fatal(err)
	}
	if one, err := pgQuery(s.PostgresURL("licenseops_demo"), `SELECT 1`); err != nil || one != "1" {
		t.Fatalf("SELECT 1 = %q, %v", one, err)
	}
	if err := ping(redisAddr); err != nil {
		t.Fatal(err)
	}

	pids := serverPids(s)
	if len(pids) < 3 {
		t.Errorf("server processes %v: want Redis, the postmaster and its children", pids)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("data directory %s after Stop: %v", dir, err)
	}
	for _, p := range pids {
		if alive(p) {
			t.Errorf("server process %d is alive after Stop", p)
		}
	}
	noChildren(t)
	if err := ping(redisAddr); err == nil {
		t.Error("Redis answers after Stop")
	}
	if c, err := net.DialTimeout("tcp", pgAddr, time.Second); err == nil {
		c.Close()
		t.Error("Postgres accepts connections after Stop")
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := (*Servers)(nil).Stop(); err != nil {
		t.Errorf("Stop of nil Servers: %v", err)
	}
}

// redisInfo returns the reply to INFO section.
func redisInfo(t *testing.T, addr, section string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := DialRedis(ctx, &url.URL{Scheme: "redis", Host: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := c.Do("INFO", section)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestOptions(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "data")
	// Under a folder of t.TempDir, which only root may enter: not where
	// postgres may run when we are root.
	if os.Geteuid() == 0 {
		parent = mkdirReachable(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{
		Dir:          parent,
		PostgresArgs: []string{"-c", "max_connections=42"},
		RedisArgs:    []string{"--appendonly", "yes"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if filepath.Dir(s.dir.Path()) != parent {
		t.Errorf("data directory %s, want one in %s", s.dir.Path(), parent)
	}
	if maxConns, err := pgQuery(s.PostgresURL("postgres"), `SHOW max_connections`); err != nil || maxConns != "42" {
		t.Errorf("max_connections = %q, %v; want 42", maxConns, err)
	}
	addr := s.Redis().Addr()
	aof := func(want string) {
		t.Helper()
		if info := redisInfo(t, addr, "persistence"); !strings.Contains(info, "aof_enabled:"+want) {
			t.Errorf("INFO persistence: no aof_enabled:%s in\n%s", want, info)
		}
	}
	aof("1")

	// SetArgs adds to the command line given by Options, Restore goes back
	// to it.
	r := s.Redis()
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if r.Running() {
		t.Error("Running after Stop")
	}
	r.SetArgs("--appendonly", "no")
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	aof("0")
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	if r.Addr() != addr {
		t.Errorf("address changed from %s to %s", addr, r.Addr())
	}
	aof("1")

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("%s holds %v after Stop", parent, left)
	}
	noChildren(t)
}

// mkdirReachable makes a folder that the postgres user may enter, and removes
// it when t ends.
func mkdirReachable(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "localdb-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "data")
}

func TestUnreachableDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("postgres runs as ourselves: every folder we can use is reachable")
	}
	_, err := Start(context.Background(), Options{Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "may not enter") {
		t.Fatalf("Start in a folder only root may enter: %v; want an error saying so", err)
	}
	noChildren(t)
}

func TestMissingBinary(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "data")
	if os.Geteuid() == 0 {
		parent = mkdirReachable(t)
	}
	t.Setenv("PATH", t.TempDir()) // no redis-server
	_, err := Start(context.Background(), Options{Dir: parent})
	if err == nil || !strings.Contains(err.Error(), "redis-server not found") || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("Start without redis-server: %v; want an error saying to run make deps", err)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("%s holds %v after the failed Start", parent, left)
	}
	noChildren(t)
}

func TestNotOwned(t *testing.T) {
	s := External("postgres", "db.example:5432", "TEST_DATABASE_URL")
	if s.Owned() || !s.Running() || s.Addr() != "db.example:5432" {
		t.Errorf("External server: Owned %v, Running %v, Addr %s", s.Owned(), s.Running(), s.Addr())
	}
	for name, f := range map[string]func() error{"Stop": s.Stop, "Kill": s.Kill, "Start": s.Start, "Restore": s.Restore} {
		if err := f(); err == nil || !strings.Contains(err.Error(), "TEST_DATABASE_URL") {
			t.Errorf("%s: %v; want an error naming TEST_DATABASE_URL", name, err)
		}
	}
}

// TestKilledProcessLeavesNoServers starts the servers in a child process,
// kills it with SIGKILL, and checks that the servers die with it, and that
// the next NewDir removes the data directory it left.
func TestKilledProcessLeavesNoServers(t *testing.T) {
	if os.Getenv("LOCALDB_TEST_HELPER") != "" {
		helper()
		return
	}
	parent := filepath.Join(t.TempDir(), "data")
	if os.Geteuid() == 0 {
		parent = mkdirReachable(t)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledProcessLeavesNoServers$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LOCALDB_TEST_HELPER="+parent)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	// dir pgAddr redisAddr pid...
	f := strings.Fields(line)
	if len(f) < 6 {
		t.Fatalf("helper said %q", line)
	}
	dir, pgAddr, redisAddr := f[0], f[1], f[2]
	var pids []int
	for _, s := range f[3:] {
		p, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("helper said %q", line)
		}
		pids = append(pids, p)
	}
	if err := ping(redisAddr); err != nil {
		t.Fatalf("the helper's Redis: %v", err)
	}

	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	waitGone(t, pids)
	if err := ping(redisAddr); err == nil {
		t.Error("Redis answers after its parent was killed")
	}
	if c, err := net.DialTimeout("tcp", pgAddr, time.Second); err == nil {
		c.Close()
		t.Error("Postgres accepts connections after its parent was killed")
	}

	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the killed helper's data directory: %v", err)
	}
	d, err := NewDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("stale data directory %s after NewDir: %v", dir, err)
	}
	if _, err := os.Stat(d.Path()); err != nil {
		t.Errorf("new data directory: %v", err)
	}
}

// helper starts the servers in the folder of $LOCALDB_TEST_HELPER, prints
// their data directory, addresses and pids, and waits to be killed.
func helper() {
	s, err := Start(context.Background(), Options{Dir: os.Getenv("LOCALDB_TEST_HELPER")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(s.dir.Path(), " ", s.Postgres().Addr(), " ", s.Redis().Addr())
	for _, p := range serverPids(s) {
		fmt.Print(" ", p)
	}
	fmt.Println()
	time.Sleep(time.Minute)
	s.Stop()
	os.Exit(1)
}
