package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
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
	"sync"
	"syscall"
	"testing"
	"time"
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
		if !rd.srv.running() {
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
	checkRun(t)
	if err := rd.start(); err != nil {
		t.Fatal(err)
	}
	rd.srv.restoreAtEnd(t)
	return rd.srv
}

type redisEnv struct {
	mu      sync.Mutex // guards start
	started bool
	err     error
	closed  bool

	// Set by start.
	srv    *Server
	base   *url.URL      // the server's URL, without database number
	free   chan int      // database numbers not in use, in turn
	wait   time.Duration // how long Redis waits for a free number
	shared bool          // other test binaries use the server: lock numbers on it
}

var rd redisEnv

func (e *redisEnv) start() error {
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

func (e *redisEnv) startLocked() error {
	if s := os.Getenv("TEST_REDIS_URL"); s != "" {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			return errors.New("testenv: TEST_REDIS_URL must be a redis:// or rediss:// URL")
		}
		addr := u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "6379")
		}
		e.srv = &Server{kind: "redis", addr: addr}
		e.base = u
		e.setFree(1, 15, time.Minute)
		e.shared = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := redisPing(ctx, u); err != nil {
			return fmt.Errorf("testenv: TEST_REDIS_URL: %w", err)
		}
		return nil
	}

	path, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("testenv: redis-server not found in PATH: %s", installHint)
	}
	root, err := tmp.get()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "redis")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	srv, err := startOwned(func(port int) *Server {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		u := &url.URL{Scheme: "redis", Host: addr}
		return &Server{
			kind:  "redis",
			addr:  addr,
			owned: true,
			path:  path,
			args: []string{
				"--port", strconv.Itoa(port),
				"--bind", "127.0.0.1",
				"--save", "",
				"--appendonly", "no",
				"--databases", "10000",
				"--dir", dir,
				"--daemonize", "no",
			},
			dir:      dir,
			logPath:  filepath.Join(root, "redis.log"),
			stopSig:  syscall.SIGTERM,
			deathSig: syscall.SIGKILL,
			ready:    func(ctx context.Context) error { return redisPing(ctx, u) },
			onChange: func() {},
		}
	})
	if err != nil {
		return err
	}
	e.srv = srv
	e.base = &url.URL{Scheme: "redis", Host: srv.addr}
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
	reply, err := c.do("SET", lockKey(n), runID, "NX", "EX", "1800")
	return reply == "OK", err
}

func (e *redisEnv) unlock(n int) {
	c, err := e.dial0()
	if err != nil {
		return
	}
	defer c.Close()
	if owner, err := c.do("GET", lockKey(n)); err == nil && owner == runID {
		c.do("DEL", lockKey(n))
	}
}

// dial0 connects to database 0 of the server.
func (e *redisEnv) dial0() (*respConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialRedis(ctx, e.base)
	if err != nil {
		return nil, err
	}
	if _, err := c.do("SELECT", "0"); err != nil {
		c.Close()
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
	e.mu.Lock()
	e.closed = true
	srv := e.srv
	e.mu.Unlock()
	if srv == nil || !srv.owned {
		return nil
	}
	return srv.Stop()
}

// redisPing checks that the server at u answers PING.
func redisPing(ctx context.Context, u *url.URL) error {
	c, err := dialRedis(ctx, u)
	if err != nil {
		return err
	}
	defer c.Close()
	reply, err := c.do("PING")
	if err == nil && reply != "PONG" {
		err = fmt.Errorf("PING: got %q", reply)
	}
	return err
}

// redisFlush empties database n of the server at u.
func redisFlush(u *url.URL, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := dialRedis(ctx, u)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.do("SELECT", strconv.Itoa(n)); err != nil {
		return err
	}
	_, err = c.do("FLUSHDB")
	return err
}

// respConn is a minimal RESP client: enough for PING, AUTH, SELECT, FLUSHDB.
type respConn struct {
	net.Conn
	r *bufio.Reader
}

// dialRedis connects (and authenticates) to the server at u, with ctx's
// deadline, or 10 seconds, for the whole conversation.
func dialRedis(ctx context.Context, u *url.URL) (*respConn, error) {
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "6379")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	conn.SetDeadline(deadline)
	if u.Scheme == "rediss" {
		tc := tls.Client(conn, &tls.Config{ServerName: u.Hostname()})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	c := &respConn{Conn: conn, r: bufio.NewReader(conn)}
	if u.User != nil {
		if pass, ok := u.User.Password(); ok {
			args := []string{"AUTH"}
			if name := u.User.Username(); name != "" {
				args = append(args, name)
			}
			if _, err := c.do(append(args, pass)...); err != nil {
				c.Close()
				return nil, err
			}
		}
	}
	return c, nil
}

// do sends a command and returns its reply: the text of a simple string,
// integer or bulk string; an error for an error reply.
func (c *respConn) do(args ...string) (string, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return "", err
	}
	return readReply(c.r)
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("redis: empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err // a null bulk string is ""
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		for range n {
			if _, err := readReply(r); err != nil {
				return "", err
			}
		}
		return "", nil
	}
	return "", fmt.Errorf("redis: unexpected reply %q", line)
}
