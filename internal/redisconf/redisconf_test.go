package redisconf

import (
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want Config
	}{
		{"redis://127.0.0.1:6379/3", Config{Mode: Single, Addrs: []string{"127.0.0.1:6379"}, DB: 3}},
		{"rediss://:pw@r.example:6380/0", Config{Mode: Single, Addrs: []string{"r.example:6380"}, Password: "pw", TLS: true}},
		{"redis-sentinel://:pw@s1:26379,s2,s3:26380/mymaster/2", Config{Mode: Sentinel,
			Addrs: []string{"s1:26379", "s2:26379", "s3:26380"}, Master: "mymaster", DB: 2, Password: "pw"}},
		{"redis-sentinel://s1/mymaster?sentinel_password=spw", Config{Mode: Sentinel, Addrs: []string{"s1:26379"},
			Master: "mymaster", SentinelPassword: "spw"}},
		{"rediss-sentinel://u:pw@s1:26379/m/0", Config{Mode: Sentinel, Addrs: []string{"s1:26379"}, Master: "m",
			Username: "u", Password: "pw", TLS: true}},
		{"redis-cluster://n1:7000,n2:7001,n3", Config{Mode: Cluster, Addrs: []string{"n1:7000", "n2:7001", "n3:6379"}}},
		{"rediss-cluster://:pw@n1:7000/0", Config{Mode: Cluster, Addrs: []string{"n1:7000"}, Password: "pw", TLS: true}},
	} {
		got, err := Parse(tc.url)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.url, err)
			continue
		}
		got.single, got.raw = nil, ""
		if got.Mode != tc.want.Mode || !slices.Equal(got.Addrs, tc.want.Addrs) || got.Master != tc.want.Master ||
			got.DB != tc.want.DB || got.Username != tc.want.Username || got.Password != tc.want.Password ||
			got.SentinelPassword != tc.want.SentinelPassword || got.TLS != tc.want.TLS {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.url, got, tc.want)
		}
	}
}

// Each bad URL is an error that says what a good one looks like, and never
// shows a password.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"127.0.0.1:6379", "is not a Redis URL: write redis://host:6379/0"},
		{"http://:secret@h/0", `unknown scheme "http": use redis, rediss`},
		{"redis://:secret@h:6379/x", "write redis://[:password@]host:6379/0"},
		{"redis-sentinel://:secret@s1,s2", "the path must be the primary's name as Sentinel knows it"},
		{"redis-sentinel://s1/m/0/1", "e.g. /mymaster/0"},
		{"redis-sentinel://s1/m/x", `database "x" is not a number`},
		{"redis-sentinel:///m", "no host: list at least one"},
		{"redis-sentinel://s1:port/m", `"s1:port" has no valid port`},
		{"redis-sentinel://s1/m?timeout=1s", `unknown option "timeout" (a sentinel URL takes only sentinel_password)`},
		{"redis-cluster://n1,n2/3", "Redis Cluster has only database 0; remove /3"},
		{"redis-cluster://n1/0/1", "a cluster URL has no path but an optional /0"},
		{"redis-cluster://n1:0", `"n1:0" has no valid port: write host:port`},
	} {
		_, err := Parse(tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Parse(%q): the error shows the password: %v", tc.url, err)
		}
	}
}

func env(vars ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(vars); i += 2 {
		m[vars[i]] = vars[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestURLFromEnv(t *testing.T) {
	const def = "redis://127.0.0.1:6379/0"
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, def},
		{[]string{"REDIS_URL", "redis://r:6379/4?dial_timeout=3s"}, "redis://r:6379/4?dial_timeout=3s"},
		{[]string{"REDIS_URL", "redis://r:6379/4", EnvPassword, "p@ss", EnvTLS, "true"}, "rediss://:p%40ss@r:6379/4"},
		{[]string{EnvSentinels, "s1:26379,s2:26379", EnvMaster, "mymaster"}, "redis-sentinel://s1:26379,s2:26379/mymaster/0"},
		{[]string{EnvSentinels, "s1", EnvMaster, "m", EnvSentinelPassword, "sp", EnvUsername, "app", EnvPassword, "pw"},
			"redis-sentinel://app:pw@s1/m/0?sentinel_password=sp"},
		{[]string{EnvCluster, "n1:7000,n2:7001", EnvTLS, "true"}, "rediss-cluster://n1:7000,n2:7001"},
		{[]string{"REDIS_URL", "redis-cluster://:old@n1:7000", EnvPassword, "new"}, "redis-cluster://:new@n1:7000"},
	} {
		got, err := URLFromEnv(env(tc.env...), def)
		if err != nil || got != tc.want {
			t.Errorf("URLFromEnv(%q) = %q, %v; want %q", tc.env, got, err, tc.want)
		}
	}
}

func TestURLFromEnvErrors(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"REDIS_URL", "redis://r/0", EnvCluster, "n1"}, "REDIS_URL and LICENSEOPS_REDIS_CLUSTER are all set"},
		{[]string{EnvSentinels, "s1", EnvCluster, "n1", EnvMaster, "m"}, "set only one of REDIS_URL"},
		{[]string{EnvSentinels, "s1"}, "LICENSEOPS_REDIS_SENTINELS is set without LICENSEOPS_REDIS_MASTER: set LICENSEOPS_REDIS_MASTER"},
		{[]string{EnvMaster, "m"}, "set LICENSEOPS_REDIS_SENTINELS to the sentinels' addresses"},
		{[]string{EnvCluster, "n1:x"}, "LICENSEOPS_REDIS_CLUSTER: "},
		{[]string{"REDIS_URL", "redis://r/0", EnvSentinelPassword, "x"}, "Redis is not reached through Sentinel"},
		{[]string{"REDIS_URL", "redis://r/0", EnvTLS, "yes"}, "LICENSEOPS_REDIS_TLS=\"yes\" is not valid: set it to true or false"},
		{[]string{"REDIS_URL", "unix:///run/redis.sock", EnvTLS, "true"}, "Redis is a unix socket"},
	} {
		_, err := URLFromEnv(env(tc.env...), "redis://127.0.0.1:6379/0")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("URLFromEnv(%q) = %v, want an error with %q", tc.env, err, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	got := Redact("redis-sentinel://:pw@s1/m/0?sentinel_password=spw")
	if strings.Contains(got, "pw@") || strings.Contains(got, "spw") {
		t.Errorf("Redact left a password: %s", got)
	}
}

func TestNewClientMode(t *testing.T) {
	for _, u := range []string{"redis://127.0.0.1:1/0", "redis-sentinel://127.0.0.1:1/m", "redis-cluster://127.0.0.1:1"} {
		rdb, c, err := Open(u, 8)
		if err != nil {
			t.Fatal(err)
		}
		if got := ModeOf(rdb); got != c.Mode {
			t.Errorf("ModeOf(client of %s) = %s, want %s", u, got, c.Mode)
		}
		_ = rdb.Close()
	}
	if ModeOf(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})) != Single {
		t.Error("a plain client is not Single")
	}
}

func TestHashTag(t *testing.T) {
	for key, want := range map[string]string{"asynq:{default}:pending": "default", "plain": "plain", "a{}b": "a{}b", "x{y}{z}": "y", "{open": "{open"} {
		if got := HashTag(key); got != want {
			t.Errorf("HashTag(%q) = %q, want %q", key, got, want)
		}
	}
}
