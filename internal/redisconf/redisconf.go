// Package redisconf reads how licenseops reaches Redis (one server, a
// primary watched by Sentinel, or a Cluster) and builds the one client
// that every part of a process shares: the queue, the api's rate limit,
// the tenants' write pacing, the sweeper's epoch marker and the console's
// sessions.
//
// The configuration has one canonical form, a URL, so that the tools that
// pass Redis along (the dev stack to its processes, the benchmark, the
// tests) pass one string whatever the mode:
//
//	redis://[[user]:password@]host:6379/0            one server (go-redis's URL, with its options)
//	rediss://…                                       the same over TLS
//	redis-sentinel://[[user]:password@]h1:26379,h2:26379/mymaster[/0][?sentinel_password=…]
//	rediss-sentinel://…                              the same over TLS (sentinels and servers)
//	redis-cluster://[[user]:password@]h1:6379,h2:6379[/0]
//	rediss-cluster://…                               the same over TLS
//
// URLFromEnv builds it from REDIS_URL or the LICENSEOPS_REDIS_* variables.
package redisconf

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Mode is how Redis is deployed.
type Mode string

// The modes.
const (
	Single   Mode = "single"
	Sentinel Mode = "sentinel"
	Cluster  Mode = "cluster"
)

// Default ports of the host lists that leave them out.
const (
	defaultPort         = "6379"
	defaultSentinelPort = "26379"
)

// sentinelPasswordParam is the query parameter of a Sentinel URL with the
// sentinels' own password (when they require one).
const sentinelPasswordParam = "sentinel_password"

// Config is a parsed Redis URL.
type Config struct {
	Mode Mode
	// Addrs are the sentinels (Sentinel) or the nodes to discover the
	// cluster from (Cluster); for Single, the server's address.
	Addrs []string
	// Master is the name Sentinel knows the primary by.
	Master string
	// DB is the database number; Cluster has only 0.
	DB                 int
	Username, Password string
	// SentinelPassword is the sentinels' own password, when they have one.
	SentinelPassword string
	TLS              bool

	single *redis.Options // Single: go-redis's parse, with its URL options
	raw    string
}

// Parse parses a Redis URL of any mode. Its errors say what a good URL
// looks like.
func Parse(raw string) (Config, error) {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return Config{}, fmt.Errorf("%q is not a Redis URL: write redis://host:6379/0, redis-sentinel://host1:26379,host2:26379/mymaster/0 or redis-cluster://host1:6379,host2:6379", Redact(raw))
	}
	switch scheme {
	case "redis", "rediss", "unix":
		opts, err := redis.ParseURL(raw)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %w (write redis://[:password@]host:6379/0)", Redact(raw), err)
		}
		return Config{Mode: Single, Addrs: []string{opts.Addr}, DB: opts.DB, Username: opts.Username,
			Password: opts.Password, TLS: opts.TLSConfig != nil, single: opts, raw: raw}, nil
	case "redis-sentinel", "rediss-sentinel":
		return parseMulti(raw, Sentinel, scheme == "rediss-sentinel")
	case "redis-cluster", "rediss-cluster":
		return parseMulti(raw, Cluster, scheme == "rediss-cluster")
	}
	return Config{}, fmt.Errorf("%s: unknown scheme %q: use redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", Redact(raw), scheme)
}

// parseMulti parses the URLs with a list of hosts: Sentinel's and Cluster's.
func parseMulti(raw string, mode Mode, useTLS bool) (Config, error) {
	hosts, u, err := splitHosts(raw)
	if err != nil {
		return Config{}, fmt.Errorf("%s is not a valid URL: %w", Redact(raw), err)
	}
	c := Config{Mode: mode, TLS: useTLS, raw: raw}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	port := defaultPort
	if mode == Sentinel {
		port = defaultSentinelPort
	}
	if c.Addrs, err = hostList(hosts, port); err != nil {
		return Config{}, fmt.Errorf("%s: %w", Redact(raw), err)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) == 1 && parts[0] == "" {
		parts = nil
	}
	db := ""
	switch mode {
	case Sentinel:
		if len(parts) == 0 || len(parts) > 2 {
			return Config{}, fmt.Errorf("%s: the path must be the primary's name as Sentinel knows it and an optional database, e.g. /mymaster/0", Redact(raw))
		}
		c.Master = parts[0]
		if len(parts) == 2 {
			db = parts[1]
		}
	case Cluster:
		if len(parts) > 1 {
			return Config{}, fmt.Errorf("%s: a cluster URL has no path but an optional /0 (Redis Cluster has only database 0)", Redact(raw))
		}
		if len(parts) == 1 {
			db = parts[0]
		}
	}
	if db != "" {
		if c.DB, err = strconv.Atoi(db); err != nil || c.DB < 0 {
			return Config{}, fmt.Errorf("%s: database %q is not a number, e.g. 0", Redact(raw), db)
		}
	}
	if mode == Cluster && c.DB != 0 {
		return Config{}, fmt.Errorf("%s: Redis Cluster has only database 0; remove /%d", Redact(raw), c.DB)
	}
	for name, vals := range u.Query() {
		if mode != Sentinel || name != sentinelPasswordParam {
			return Config{}, fmt.Errorf("%s: unknown option %q (a %s URL takes only %s)", Redact(raw), name, mode, options(mode))
		}
		c.SentinelPassword = vals[len(vals)-1]
	}
	return c, nil
}

func options(mode Mode) string {
	if mode == Sentinel {
		return sentinelPasswordParam
	}
	return "none"
}

// splitHosts parses a URL whose host is a comma-separated list, which
// net/url refuses when a host but the last has no port: it returns the
// list, and the URL parsed with one placeholder host instead.
func splitHosts(raw string) (string, *url.URL, error) {
	scheme, rest, _ := strings.Cut(raw, "://")
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo, hosts := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hosts = authority[:i+1], authority[i+1:]
	}
	u, err := url.Parse(scheme + "://" + userinfo + "placeholder" + tail)
	return hosts, u, err
}

// hostList splits "h1:p1,h2,h3:p3", adding port where none is given.
func hostList(s, port string) ([]string, error) {
	var addrs []string
	for _, h := range strings.Split(s, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if _, p, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, port)
		} else if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("%q has no valid port: write host:port, e.g. redis1:%s", h, port)
		}
		addrs = append(addrs, h)
	}
	if len(addrs) == 0 {
		return nil, errors.New("no host: list at least one, comma-separated, e.g. host1:" + port + ",host2:" + port)
	}
	return addrs, nil
}

// String is c's URL with its passwords hidden, for messages.
func (c Config) String() string { return Redact(c.raw) }

// Redact hides the passwords of a Redis URL (the user's and Sentinel's).
func Redact(raw string) string {
	hosts, u, err := splitHosts(raw)
	if err != nil || !strings.Contains(raw, "://") {
		return "(unparseable URL)"
	}
	u.Host = hosts
	if q := u.Query(); q.Has(sentinelPasswordParam) {
		q.Set(sentinelPasswordParam, "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// NewClient builds the client of c. poolSize bounds the connections of the
// process to the primary (in Cluster, to each primary); 0 keeps go-redis's
// default.
func (c Config) NewClient(poolSize int) redis.UniversalClient {
	var tlsConf *tls.Config
	if c.TLS {
		// The system's roots (SSL_CERT_FILE adds a private CA). No server
		// name: crypto/tls takes each node's from the address it dials, as
		// Sentinel and Cluster hand out several.
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	switch c.Mode {
	case Sentinel:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: c.Master, SentinelAddrs: c.Addrs, SentinelPassword: c.SentinelPassword,
			Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: tlsConf, PoolSize: poolSize,
		})
	case Cluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: c.Addrs, Username: c.Username, Password: c.Password, TLSConfig: tlsConf, PoolSize: poolSize,
		})
	}
	opts := *c.single
	if poolSize > 0 {
		opts.PoolSize = poolSize
	}
	return redis.NewClient(&opts)
}

// Open parses raw and builds its client: Parse, then NewClient.
func Open(raw string, poolSize int) (redis.UniversalClient, Config, error) {
	c, err := Parse(raw)
	if err != nil {
		return nil, Config{}, err
	}
	return c.NewClient(poolSize), c, nil
}

// ModeOf tells the mode of a client NewClient built: go-redis builds a
// Sentinel client as a *redis.Client whose address is "FailoverClient".
func ModeOf(rdb redis.UniversalClient) Mode {
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return Cluster
	case *redis.Client:
		if c.Options().Addr == "FailoverClient" {
			return Sentinel
		}
	}
	return Single
}

// CheckPrimary returns nil when the primary of rdb answers as a primary: in
// Sentinel mode the server Sentinel names must say it is the master (not a
// replica left over from before a failover), in Cluster mode every hash
// slot must be served and every primary answer.
func CheckPrimary(ctx context.Context, rdb redis.UniversalClient) error {
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		info, err := c.ClusterInfo(ctx).Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return errors.New("the cluster is not serving every hash slot (cluster_state is not ok): a primary is down and no replica took over")
		}
		return c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			if err := n.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("primary %s: %w", n.Options().Addr, err)
			}
			return nil
		})
	case *redis.Client:
		if ModeOf(c) != Sentinel {
			return c.Ping(ctx).Err()
		}
		role, err := c.Do(ctx, "ROLE").Slice()
		if err != nil {
			return err
		}
		if len(role) == 0 || role[0] != "master" {
			return fmt.Errorf("the server Sentinel names as primary answers with role %v: a failover is under way", role)
		}
		return nil
	}
	return rdb.Ping(ctx).Err()
}

// HashTag is the part of key that Redis Cluster hashes to pick its slot:
// the text between the first { and the next } when it is not empty, else
// the whole key. Keys that one script or transaction touches together
// must have the same.
func HashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}
