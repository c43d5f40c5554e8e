package localdb

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// SentinelInstallHint ends the message when redis-sentinel is missing.
const SentinelInstallHint = "run `make deps`, which installs Debian's redis-sentinel"

// StartSentinel starts redis-sentinel on a free port of 127.0.0.1, with the
// folder sentinel of d as its working directory, watching the primary at
// primaryAddr under the name master with quorum, and waits until it
// answers PING. It notices a dead primary after a second, so that tests of
// a failover stay short. Sentinel rewrites its configuration file as it
// learns the other sentinels and replicas, so the file lives in the folder;
// a restart keeps what it learnt. The server is killed when this process
// dies.
func StartSentinel(ctx context.Context, d *Dir, master, primaryAddr string, quorum int) (*Server, error) {
	path, err := exec.LookPath("redis-sentinel")
	if err != nil {
		return nil, fmt.Errorf("localdb: redis-sentinel not found in PATH: %s", SentinelInstallHint)
	}
	dir := filepath.Join(d.path, "sentinel")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("localdb: %w", err)
	}
	host, port, err := splitAddr(primaryAddr)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "sentinel.conf")
	var werr error
	srv, err := startOwned(ctx, func(addr string, p int) *Server {
		werr = os.WriteFile(conf, fmt.Appendf(nil, `port %d
bind 127.0.0.1
dir %s
sentinel monitor %s %s %s %d
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 10000
sentinel parallel-syncs %s 1
`, p, dir, master, host, port, quorum, master, master, master), 0o600)
		u := &url.URL{Scheme: "redis", Host: addr}
		return &Server{
			kind: "redis-sentinel", addr: addr, path: path,
			args:    []string{conf},
			dir:     dir,
			logPath: filepath.Join(dir, "sentinel.log"),
			stopSig: syscall.SIGTERM, deathSig: syscall.SIGKILL,
			ready: func(ctx context.Context) error { return PingRedis(ctx, u) },
		}
	})
	if werr != nil {
		return nil, fmt.Errorf("localdb: write the sentinel's configuration: %w", werr)
	}
	return srv, err
}

// splitAddr splits host:port, checking the port.
func splitAddr(addr string) (string, string, error) {
	u := url.URL{Host: addr}
	if _, err := strconv.Atoi(u.Port()); err != nil {
		return "", "", fmt.Errorf("localdb: %q is not host:port", addr)
	}
	return u.Hostname(), u.Port(), nil
}
