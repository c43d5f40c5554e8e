// Package localdb starts private Postgres and Redis servers from the machine's
// binaries (initdb/postgres and redis-server), for the demo, benchmarks and
// (through internal/testenv) the tests. They listen on free ports of
// 127.0.0.1 and keep their data in a new temporary directory; the machine's
// own servers are never touched.
//
//	servers, err := localdb.Start(ctx, localdb.Options{})
//	if err != nil { ... }
//	defer servers.Stop()
//	dbURL := servers.PostgresURL("mydb") // the database must still be created
//	redisURL := servers.RedisURL(0)
//
// The data directory is under /dev/shm when it is a tmpfs with room (creating
// a database there takes about 12 ms instead of 250 ms on a disk), else under
// $TMPDIR; see NewDir. When running as root, initdb and postgres run as the
// postgres user. The servers are in a process group of their own (the
// terminal's ^C does not reach them) and get a parent-death signal, so they
// die with the process that started them even when it is killed; the data
// directories that such a process leaves behind are removed by the next
// process that makes one.
package localdb

import (
	"context"
	"errors"
	"sync"
)

// InstallHint ends the message of every failure caused by a missing binary.
const InstallHint = "run `make deps` (or `make demo`/`make test`), which installs Debian's postgresql and redis-server"

// Options configure Start.
type Options struct {
	// Dir is the folder in which Start makes the servers' data directory
	// (created if missing). By default: $TMPDIR when set, else /dev/shm
	// when it is a tmpfs with at least 1 GiB free, else the usual
	// temporary directory.
	Dir string
	// PostgresArgs and RedisArgs are appended to the servers' usual command
	// lines, for example {"-c", "max_connections=500"} or
	// {"--appendonly", "yes"}.
	PostgresArgs []string
	RedisArgs    []string
}

// Servers are a private Postgres and Redis started by Start.
type Servers struct {
	dir      *Dir
	postgres *Server
	redis    *Server

	mu      sync.Mutex
	stopped bool
	err     error
}

// Start starts a private Postgres (on a cluster that initdb makes anew) and
// Redis on free 127.0.0.1 ports and waits until both answer. ctx bounds the
// start only; the servers run until Stop or the death of this process.
func Start(ctx context.Context, opts Options) (*Servers, error) {
	dir, err := NewDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	s := &Servers{dir: dir}
	// The first failure stops the other start (initdb takes a while).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	var first error
	fail := func(err error) {
		once.Do(func() {
			first = err
			cancel()
		})
	}
	redisDone := make(chan struct{})
	go func() {
		defer close(redisDone)
		var err error
		if s.redis, err = StartRedis(ctx, dir, opts.RedisArgs...); err != nil {
			fail(err)
		}
	}()
	if s.postgres, err = StartPostgres(ctx, dir, opts.PostgresArgs...); err != nil {
		fail(err)
	}
	<-redisDone
	if first != nil {
		_ = s.Stop() // the start error is the one to report
		return nil, first
	}
	return s, nil
}

// Postgres returns the Postgres server.
func (s *Servers) Postgres() *Server { return s.postgres }

// Redis returns the Redis server.
func (s *Servers) Redis() *Server { return s.redis }

// PostgresURL returns the URL of database on the Postgres server, for the
// role postgres, which needs no password:
// postgres://postgres@127.0.0.1:PORT/DATABASE?sslmode=disable. The database
// postgres exists; others must be created first.
func (s *Servers) PostgresURL(database string) string {
	return PostgresURL(s.postgres.Addr(), database)
}

// RedisURL returns the URL of database number db (0 to 9999) of the Redis
// server: redis://127.0.0.1:PORT/DB.
func (s *Servers) RedisURL(db int) string {
	return RedisURL(s.redis.Addr(), db)
}

// Stop stops both servers and removes their data directory. Calling it again
// does nothing but return the first call's error.
func (s *Servers) Stop() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return s.err
	}
	s.stopped = true
	var errs []error
	for _, srv := range []*Server{s.postgres, s.redis} {
		if srv != nil {
			errs = append(errs, srv.Stop())
		}
	}
	errs = append(errs, s.dir.Remove())
	s.err = errors.Join(errs...)
	return s.err
}
