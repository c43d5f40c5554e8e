package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/localdb"
)

// Redis returns the URL (redis://127.0.0.1:PORT/N) of a Redis database number
// N of its own for t, empty, and flushed again when t ends. The first call of
// the test binary starts the private server, with 10000 databases so that
// parallel tests never share one.
//
// With TEST_REDIS_URL, the database numbers are 1 to 15 of that server, handed
// out in turn: a test waits (up to a minute) while all 15 are held by others,
// which limits parallelism. Since the test binaries of several packages run at
// the same time, each number is also locked on the server, by a key
// licenseops:testenv:db:N in database 0 that expires after 30 minutes in case
// the binary dies holding it.
//
// When redis-server is missing, Redis fails t, saying how to install it.
func Redis(t testing.TB) string {
	t.Helper()
	checkRun(t)
	if err := rd.start(); err != nil {
		t.Fatal(err)
	}
	n, err := rd.acquire()
	if err != nil {
		t.Fatal(err)
	}
	u := rd.dbURL(n)
	if err := redisFlush(u, n); err != nil {
		rd.release(n)
		t.Fatalf("testenv: flush Redis database %d: %v", n, err)
	}
	t.Cleanup(func() {
		defer rd.release(n)
		if !rd.srv.Running() {
			return // flushed before its next use
		}
		if err := redisFlush(u, n); err != nil {
			t.Errorf("testenv: flush Redis database %d: %v", n, err)
		}
	})
	return u.String()
}

// RedisServer returns the Redis server of the test binary, starting it if
// needed, for fault tests. When t ends, the server is started again if it is
// stopped, and restarted without them if SetArgs gave it extra arguments.
func RedisServer(t testing.TB) *Server {
	t.Helper()
	return faultServer(t, &rd)
}

type redisEnv struct {
	lazy

	// Set by start.
	base   *url.URL      // the server's URL, without database number
	free   chan int      // database numbers not in use, in turn
	wait   time.Duration // how long Redis waits for a free number
	shared bool          // other test binaries use the server: lock numbers on it
}

var rd redisEnv

func (e *redisEnv) start() error { return e.startOnce(e.startServer) }

func (e *redisEnv) startServer() error {
	if os.Getenv("TEST_REDIS_URL") != "" {
		var err error
		if e.base, e.srv, err = external("TEST_REDIS_URL", "redis", "6379", localdb.PingRedis, "redis", "rediss"); err != nil {
			return err
		}
		e.setFree(1, 15, time.Minute)
		e.shared = true
		return nil
	}
	srv, err := startPrivate(localdb.StartRedis)
	if err != nil {
		return err
	}
	e.srv = srv
	e.base = &url.URL{Scheme: "redis", Host: srv.Addr()}
	e.setFree(1, 9999, 30*time.Second)
	return nil
}

func (e *redisEnv) setFree(from, to int, wait time.Duration) {
	e.free = make(chan int, to-from+1)
	for n := from; n <= to; n++ {
		e.free <- n
	}
	e.wait = wait
}

// acquire takes a database number nobody else uses.
func (e *redisEnv) acquire() (int, error) {
	deadline := time.Now().Add(e.wait)
	for {
		var n int
		select {
		case n = <-e.free:
		case <-time.After(time.Until(deadline)):
			return 0, e.busy()
		}
		if !e.shared {
			return n, nil
		}
		ok, err := e.lock(n)
		if err != nil {
			e.free <- n
			return 0, fmt.Errorf("testenv: lock Redis database %d: %w", n, err)
		}
		if ok {
			return n, nil
		}
		// Another test binary holds it: try the next one.
		e.free <- n
		if time.Now().After(deadline) {
			return 0, e.busy()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *redisEnv) busy() error {
	if e.shared {
		return fmt.Errorf("testenv: the %d Redis databases of TEST_REDIS_URL are all still in use after %v: lower -parallel or -p, or unset TEST_REDIS_URL to use a private server", cap(e.free), e.wait)
	}
	return fmt.Errorf("testenv: all %d Redis databases are still in use after %v", cap(e.free), e.wait)
}

// release gives back a number that acquire returned.
func (e *redisEnv) release(n int) {
	if e.shared {
		e.unlock(n) // else it expires
	}
	e.free <- n
}

func lockKey(n int) string { return "licenseops:testenv:db:" + strconv.Itoa(n) }

// lock takes database n for this test binary on a shared server.
func (e *redisEnv) lock(n int) (bool, error) {
	c, err := e.dial0()
	if err != nil {
		return false, err
	}
	defer c.Close()
	reply, err := c.Do("SET", lockKey(n), runID, "NX", "EX", "1800")
	return reply == "OK", err
}

func (e *redisEnv) unlock(n int) {
	c, err := e.dial0()
	if err != nil {
		return
	}
	defer c.Close()
	if owner, err := c.Do("GET", lockKey(n)); err == nil && owner == runID {
		_, _ = c.Do("DEL", lockKey(n)) // else it expires
	}
}

// dial0 connects to database 0 of the server.
func (e *redisEnv) dial0() (*localdb.RedisConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := localdb.DialRedis(ctx, e.base)
	if err != nil {
		return nil, err
	}
	if _, err := c.Do("SELECT", "0"); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

func (e *redisEnv) dbURL(n int) *url.URL {
	u := *e.base
	u.Path = "/" + strconv.Itoa(n)
	u.RawPath = ""
	return &u
}

func (e *redisEnv) shutdown() error {
	srv := e.close()
	if srv == nil || !srv.Owned() {
		return nil
	}
	return srv.Stop()
}

// redisFlush empties database n of the server at u.
func redisFlush(u *url.URL, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := localdb.DialRedis(ctx, u)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Do("SELECT", strconv.Itoa(n)); err != nil {
		return err
	}
	_, err = c.Do("FLUSHDB")
	return err
}
