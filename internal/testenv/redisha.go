package testenv

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/internal/localdb"
)

// SentinelRedis is a Redis primary, its replica and three sentinels
// (quorum two), private to one test: RedisSentinel starts them, and kills
// them when the test ends.
type SentinelRedis struct {
	Primary, Replica *Server
	Sentinels        []*Server
	// Master is the name the sentinels know the primary by.
	Master string
}

// URL is the redis-sentinel:// URL of database 0 through the sentinels.
func (s *SentinelRedis) URL() string {
	addrs := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		addrs[i] = sn.Addr()
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "/" + s.Master + "/0"
}

// PrimaryAddr is the address the sentinels give for the primary now.
func (s *SentinelRedis) PrimaryAddr(ctx context.Context) (string, error) {
	var lastErr error
	for _, sn := range s.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr()})
		addr, err := c.GetMasterAddrByName(ctx, s.Master).Result()
		_ = c.Close()
		if err == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1]), nil
		}
		lastErr = err
	}
	return "", fmt.Errorf("no sentinel names the primary: %v", lastErr)
}

// RedisSentinel starts a primary and its replica (persisting nothing, like
// the private server of Redis) and three sentinels watching them, and waits
// until the replica is in sync and every sentinel knows the replica and the
// other two, so that a failover can start as soon as the test kills the
// primary.
func RedisSentinel(t testing.TB) *SentinelRedis {
	t.Helper()
	s := &SentinelRedis{Master: "licenseops"}
	s.Primary = startHA(t, func(ctx context.Context, d *localdb.Dir) (*Server, error) { return localdb.StartRedis(ctx, d) })
	s.Replica = startHA(t, func(ctx context.Context, d *localdb.Dir) (*Server, error) {
		host, port, _ := net.SplitHostPort(s.Primary.Addr())
		return localdb.StartRedis(ctx, d, "--replicaof", host, port)
	})
	for range 3 {
		s.Sentinels = append(s.Sentinels, startHA(t, func(ctx context.Context, d *localdb.Dir) (*Server, error) {
			return localdb.StartSentinel(ctx, d, s.Master, s.Primary.Addr(), 2)
		}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	primary := redis.NewClient(&redis.Options{Addr: s.Primary.Addr()})
	defer primary.Close()
	err := poll(ctx, func() error {
		info, err := primary.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "connected_slaves:1") || !strings.Contains(info, "state=online") {
			return fmt.Errorf("the replica is not in sync: %v\n%s", err, info)
		}
		for _, sn := range s.Sentinels {
			c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr()})
			replicas, err := c.Replicas(ctx, s.Master).Result()
			if err == nil && len(replicas) != 1 {
				err = fmt.Errorf("it knows %d replicas", len(replicas))
			}
			if err == nil {
				var q string
				if q, err = c.CkQuorum(ctx, s.Master).Result(); err == nil && !strings.Contains(q, "3 usable") {
					err = fmt.Errorf("quorum: %s", q)
				}
			}
			_ = c.Close()
			if err != nil {
				return fmt.Errorf("sentinel %s: %w", sn.Addr(), err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testenv: the Sentinel set did not settle within a minute: %v", err)
	}
	return s
}

// RedisCluster starts a Redis Cluster of n primaries without replicas,
// private to one test, and returns its redis-cluster:// URL and its nodes,
// once every hash slot is served. The nodes are killed when the test ends.
func RedisCluster(t testing.TB, n int) (string, []*Server) {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("testenv: redis-cli not found in PATH: %s", localdb.InstallHint)
	}
	var nodes []*Server
	var addrs []string
	for range n {
		node := startHA(t, func(ctx context.Context, d *localdb.Dir) (*Server, error) {
			// The cluster bus listens on a port of its own: by default the
			// node's port + 10000, which may be taken or out of range.
			bus, err := localdb.FreePort()
			if err != nil {
				return nil, err
			}
			return localdb.StartRedis(ctx, d, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", "2000", "--cluster-port", strconv.Itoa(bus))
		})
		nodes, addrs = append(nodes, node), append(addrs, node.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil { // #nosec G204 -- redis-cli with the addresses of servers this test started
		t.Fatalf("testenv: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		err := poll(ctx, func() error {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && !strings.Contains(info, "cluster_state:ok") {
				err = fmt.Errorf("not every slot is served yet:\n%s", info)
			}
			return err
		})
		_ = c.Close()
		if err != nil {
			t.Fatalf("testenv: the cluster node %s: %v", addr, err)
		}
	}
	return "redis-cluster://" + strings.Join(addrs, ","), nodes
}

// startHA starts one server of a Sentinel set or a cluster in a folder of
// its own, and kills it when t ends.
func startHA(t testing.TB, start func(context.Context, *localdb.Dir) (*Server, error)) *Server {
	t.Helper()
	checkRun(t)
	root, err := tmp.get()
	if err != nil {
		t.Fatal(err)
	}
	d, err := localdb.NewDir(root.Path())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := start(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Kill()
		_ = d.Remove()
	})
	return srv
}

// poll calls f every 50 ms until it returns nil or ctx ends, and returns
// its last error then.
func poll(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
