package testenv_test

import (
	"bufio"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/licenseops/licenseops/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Run(m) }

// migrations counts the calls of migrate: one per test binary.
var migrations atomic.Int32

func migrate(url string) error {
	migrations.Add(1)
	db, err := sql.Open("postgres", url)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec(`CREATE TABLE widgets (id serial PRIMARY KEY, name text NOT NULL)`)
	return err
}

func openDB(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func dbNameOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// redisDo sends one command to the database of a Redis URL and returns the
// reply (simple string, integer or bulk string; an error reply is an error).
func redisDo(rawURL string, args ...string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	send := func(args ...string) (string, error) {
		fmt.Fprintf(c, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(c, "$%d\r\n%s\r\n", len(a), a)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimSuffix(line, "\r\n")
		switch line[0] {
		case '+', ':':
			return line[1:], nil
		case '$':
			n, _ := strconv.Atoi(line[1:])
			if n < 0 {
				return "", nil
			}
			b := make([]byte, n+2)
			_, err := io.ReadFull(r, b)
			return string(b[:n]), err
		}
		return "", fmt.Errorf("redis: %s", line)
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if _, err := send("SELECT", db); err != nil {
			return "", err
		}
	}
	return send(args...)
}

// TestParallelIsolation runs parallel tests (the first ones of the binary,
// so they race to start the servers) and checks that each got a database
// and a Redis database number of its own.
func TestParallelIsolation(t *testing.T) {
	const n = 6
	var mu sync.Mutex
	pgDBs := map[string]string{}
	redisDBs := map[string]string{}
	t.Run("group", func(t *testing.T) {
		for i := range n {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				pu := testenv.Postgres(t, migrate)
				ru := testenv.Redis(t)
				mu.Lock()
				pgDBs[dbNameOf(t, pu)] = t.Name()
				redisDBs[dbNameOf(t, ru)] = t.Name()
				mu.Unlock()

				db := openDB(t, pu)
				// The template's schema is there, its data is ours.
				var count int
				if err := db.QueryRow(`SELECT count(*) FROM widgets`).Scan(&count); err != nil {
					t.Fatal(err)
				}
				if count != 0 {
					t.Errorf("widgets has %d rows, want 0", count)
				}
				if _, err := db.Exec(`INSERT INTO widgets (name) VALUES ($1)`, t.Name()); err != nil {
					t.Fatal(err)
				}

				// An empty Redis database, that keeps what we put there.
				if got, err := redisDo(ru, "DBSIZE"); err != nil || got != "0" {
					t.Errorf("DBSIZE = %q, %v; want 0", got, err)
				}
				if _, err := redisDo(ru, "SET", "owner", t.Name()); err != nil {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond) // overlap with the others
				if got, err := redisDo(ru, "GET", "owner"); err != nil || got != t.Name() {
					t.Errorf("GET owner = %q, %v; want %q", got, err, t.Name())
				}
				if got, err := redisDo(ru, "DBSIZE"); err != nil || got != "1" {
					t.Errorf("DBSIZE = %q, %v; want 1", got, err)
				}
			})
		}
	})
	if len(pgDBs) != n {
		t.Errorf("%d tests got %d distinct databases: %v", n, len(pgDBs), pgDBs)
	}
	// With TEST_REDIS_URL, a number can be used again by a later test once
	// its holder is done (the owner check above catches overlaps).
	if testenv.RedisServer(t).Owned() && len(redisDBs) != n {
		t.Errorf("%d tests got %d distinct Redis databases: %v", n, len(redisDBs), redisDBs)
	}
}

func TestTableAbsentInOtherDatabase(t *testing.T) {
	a := openDB(t, testenv.Postgres(t, migrate))
	b := openDB(t, testenv.Postgres(t, migrate))
	if _, err := a.Exec(`CREATE TABLE only_in_a (x int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(`INSERT INTO widgets (name) VALUES ('a')`); err != nil {
		t.Fatal(err)
	}
	var inA, inB sql.NullString
	if err := a.QueryRow(`SELECT to_regclass('only_in_a')::text`).Scan(&inA); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(`SELECT to_regclass('only_in_a')::text`).Scan(&inB); err != nil {
		t.Fatal(err)
	}
	if !inA.Valid || inB.Valid {
		t.Errorf("only_in_a: in a %v, in b %v; want true, false", inA.Valid, inB.Valid)
	}
	var count int
	if err := b.QueryRow(`SELECT count(*) FROM widgets`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != 0 {
		t.Errorf("b has %d widgets, want 0", count)
	}
}

func TestLongTestNameGivesValidDatabaseName(t *testing.T) {
	name := strings.Repeat("Very Long Name-", 10)
	for range 2 {
		t.Run(name, func(t *testing.T) {
			u := testenv.Postgres(t, migrate)
			if n := dbNameOf(t, u); len(n) > 63 {
				t.Errorf("database name %q is %d bytes long", n, len(n))
			}
			if err := openDB(t, u).Ping(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestMigrateRunsOnce(t *testing.T) {
	t.Run("group", func(t *testing.T) {
		for i := range 4 {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				openDB(t, testenv.Postgres(t, migrate))
			})
		}
	})
	if got := migrations.Load(); got != 1 {
		t.Errorf("migrate ran %d times, want 1", got)
	}
}

func TestRedisKillStart(t *testing.T) {
	srv := testenv.RedisServer(t)
	if !srv.Owned() {
		t.Skip("TEST_REDIS_URL is set: this fault test only kills a Redis server that testenv started")
	}
	u := testenv.Redis(t)
	addr := srv.Addr()
	if got, err := redisDo(u, "PING"); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v", got, err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := redisDo(u, "PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != addr {
		t.Errorf("address changed from %s to %s", addr, srv.Addr())
	}
	if got, err := redisDo(u, "PING"); err != nil || got != "PONG" {
		t.Fatalf("PING after Start = %q, %v", got, err)
	}
}

func TestRedisAppendOnlySurvivesKill(t *testing.T) {
	srv := testenv.RedisServer(t)
	if !srv.Owned() {
		t.Skip("TEST_REDIS_URL is set: this fault test only restarts a Redis server that testenv started")
	}
	u := testenv.Redis(t)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	srv.SetArgs("--appendonly", "yes")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := redisDo(u, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if got, err := redisDo(u, "GET", "k"); err != nil || got != "v" {
		t.Errorf("GET k after Kill with appendonly = %q, %v; want v", got, err)
	}
}

func TestRedisArgsRestoredAfterFaultTest(t *testing.T) {
	// Runs after TestRedisAppendOnlySurvivesKill: its cleanup has restarted
	// the server without --appendonly yes, so nothing of k is left.
	srv := testenv.RedisServer(t)
	if !srv.Owned() {
		t.Skip("TEST_REDIS_URL is set: the private server is not used")
	}
	u := testenv.Redis(t)
	if got, err := redisDo(u, "PING"); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v", got, err)
	}
	if got, err := redisDo(u, "INFO", "persistence"); err != nil || !strings.Contains(got, "aof_enabled:0") {
		t.Errorf("INFO persistence = %q, %v; want aof_enabled:0", got, err)
	}
}

func TestPostgresStopStart(t *testing.T) {
	srv := testenv.PostgresServer(t)
	if !srv.Owned() {
		t.Skip("TEST_DATABASE_URL is set: this fault test only stops a Postgres server that testenv started")
	}
	u := testenv.Postgres(t, migrate)
	addr := srv.Addr()
	db := openDB(t, u)
	if _, err := db.Exec(`INSERT INTO widgets (name) VALUES ('kept')`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	for _, stop := range []struct {
		name string
		f    func() error
	}{{"Stop", srv.Stop}, {"Kill", srv.Kill}} {
		if err := stop.f(); err != nil {
			t.Fatalf("%s: %v", stop.name, err)
		}
		if err := openDB(t, u).Ping(); err == nil {
			t.Fatalf("connected after %s", stop.name)
		}
		if err := srv.Start(); err != nil {
			t.Fatalf("Start after %s: %v", stop.name, err)
		}
		if srv.Addr() != addr {
			t.Errorf("address changed from %s to %s", addr, srv.Addr())
		}
		var name string
		if err := openDB(t, u).QueryRow(`SELECT name FROM widgets`).Scan(&name); err != nil || name != "kept" {
			t.Errorf("after %s and Start: widget %q, %v; want kept", stop.name, name, err)
		}
	}
	// New databases can still be made from the template.
	openDB(t, testenv.Postgres(t, migrate))
}
