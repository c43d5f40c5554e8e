package localdb

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
	"syscall"
	"time"
)

// StartRedis starts redis-server on a free port of 127.0.0.1, with the
// folder redis of d as its working directory, and waits until it answers PING.
// It persists nothing and has 10000 databases. args are appended to the usual
// command line (for example "--appendonly", "yes"). The server is killed when
// this process dies.
func StartRedis(ctx context.Context, d *Dir, args ...string) (*Server, error) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("localdb: redis-server not found in PATH: %s", InstallHint)
	}
	dir := filepath.Join(d.path, "redis")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("localdb: %w", err)
	}
	return startOwned(ctx, func(addr string, port int) *Server {
		u := &url.URL{Scheme: "redis", Host: addr}
		return &Server{
			kind: "redis",
			addr: addr,
			path: path,
			args: append([]string{
				"--port", strconv.Itoa(port),
				"--bind", "127.0.0.1",
				"--save", "",
				"--appendonly", "no",
				"--databases", "10000",
				"--dir", dir,
				"--daemonize", "no",
			}, args...),
			dir:      dir,
			logPath:  filepath.Join(dir, "redis.log"),
			stopSig:  syscall.SIGTERM,
			deathSig: syscall.SIGKILL,
			ready:    func(ctx context.Context) error { return PingRedis(ctx, u) },
		}
	})
}

// RedisURL returns the URL of database db of the Redis server at addr
// (host:port): redis://ADDR/DB.
func RedisURL(addr string, db int) string {
	u := url.URL{Scheme: "redis", Host: addr, Path: "/" + strconv.Itoa(db)}
	return u.String()
}

// PingRedis checks that the server at u answers PING.
func PingRedis(ctx context.Context, u *url.URL) error {
	c, err := DialRedis(ctx, u)
	if err != nil {
		return err
	}
	defer c.Close()
	reply, err := c.Do("PING")
	if err == nil && reply != "PONG" {
		err = fmt.Errorf("PING: got %q", reply)
	}
	return err
}

// RedisConn is a minimal RESP client: enough for PING, AUTH, SELECT, FLUSHDB,
// GET, SET and DEL.
type RedisConn struct {
	net.Conn
	r *bufio.Reader
}

// DialRedis connects (and authenticates) to the server at u, a redis:// or
// rediss:// URL, with ctx's deadline, or 10 seconds, for the whole
// conversation. It does not select the database of u's path.
func DialRedis(ctx context.Context, u *url.URL) (*RedisConn, error) {
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
	if err := conn.SetDeadline(deadline); err != nil { // else a hung server would hang us
		_ = conn.Close()
		return nil, err
	}
	if u.Scheme == "rediss" {
		tc := tls.Client(conn, &tls.Config{ServerName: u.Hostname()})
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		conn = tc
	}
	c := &RedisConn{Conn: conn, r: bufio.NewReader(conn)}
	if u.User != nil {
		if pass, ok := u.User.Password(); ok {
			args := []string{"AUTH"}
			if name := u.User.Username(); name != "" {
				args = append(args, name)
			}
			if _, err := c.Do(append(args, pass)...); err != nil {
				_ = c.Close()
				return nil, err
			}
		}
	}
	return c, nil
}

// Do sends a command and returns its reply: the text of a simple string,
// integer or bulk string ("" for a null one or an array); an error for an
// error reply.
func (c *RedisConn) Do(args ...string) (string, error) {
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
