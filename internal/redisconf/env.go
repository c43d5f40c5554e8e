package redisconf

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// The environment variables URLFromEnv reads, besides REDIS_URL.
const (
	EnvSentinels        = "LICENSEOPS_REDIS_SENTINELS"
	EnvMaster           = "LICENSEOPS_REDIS_MASTER"
	EnvCluster          = "LICENSEOPS_REDIS_CLUSTER"
	EnvUsername         = "LICENSEOPS_REDIS_USERNAME"
	EnvPassword         = "LICENSEOPS_REDIS_PASSWORD"
	EnvSentinelPassword = "LICENSEOPS_REDIS_SENTINEL_PASSWORD"
	EnvTLS              = "LICENSEOPS_REDIS_TLS"
)

// URLFromEnv returns the Redis URL the environment configures, checked by
// Parse, or def when nothing is set:
//
//   - REDIS_URL, of any mode; or
//   - LICENSEOPS_REDIS_SENTINELS (host:port list) with LICENSEOPS_REDIS_MASTER; or
//   - LICENSEOPS_REDIS_CLUSTER (host:port list of some of its nodes);
//
// and, for any of them, LICENSEOPS_REDIS_USERNAME and _PASSWORD (the
// servers'), _SENTINEL_PASSWORD (the sentinels' own) and _TLS=true, which
// take precedence over what the URL says, so that a password can come
// from a secret of its own.
func URLFromEnv(getenv func(string) string, def string) (string, error) {
	raw := getenv("REDIS_URL")
	sentinels, master, cluster := getenv(EnvSentinels), getenv(EnvMaster), getenv(EnvCluster)
	var set []string
	for _, v := range [][2]string{{"REDIS_URL", raw}, {EnvSentinels, sentinels}, {EnvCluster, cluster}} {
		if v[1] != "" {
			set = append(set, v[0])
		}
	}
	if len(set) > 1 {
		return "", fmt.Errorf("%s are all set, but each names a Redis deployment: set only one of REDIS_URL, %s (with %s) or %s",
			strings.Join(set, " and "), EnvSentinels, EnvMaster, EnvCluster)
	}
	source := "REDIS_URL"
	if len(set) == 1 {
		source = set[0]
	}
	switch {
	case sentinels != "" && master == "":
		return "", fmt.Errorf("%s is set without %s: set %s to the name Sentinel knows the primary by (sentinel monitor NAME …), e.g. mymaster", EnvSentinels, EnvMaster, EnvMaster)
	case master != "" && sentinels == "":
		return "", fmt.Errorf("%s is set without %s: set %s to the sentinels' addresses, e.g. sentinel1:26379,sentinel2:26379,sentinel3:26379", EnvMaster, EnvSentinels, EnvSentinels)
	case sentinels != "":
		raw = "redis-sentinel://" + sentinels + "/" + url.PathEscape(master) + "/0"
	case cluster != "":
		raw = "redis-cluster://" + cluster
	case raw == "":
		raw = def
	}
	if _, err := Parse(raw); err != nil {
		return "", fmt.Errorf("%s: %w", source, err)
	}
	hosts, u, err := splitHosts(raw)
	if err != nil {
		return "", fmt.Errorf("%s is not a valid URL: %w", Redact(raw), err)
	}
	u.Host = hosts
	user, pass, sentinelPass, useTLS := getenv(EnvUsername), getenv(EnvPassword), getenv(EnvSentinelPassword), getenv(EnvTLS)
	if user != "" || pass != "" {
		if user == "" && u.User != nil {
			user = u.User.Username()
		}
		if pass == "" && u.User != nil {
			pass, _ = u.User.Password()
		}
		u.User = userinfo(user, pass)
	}
	if sentinelPass != "" {
		if !strings.HasSuffix(u.Scheme, "-sentinel") {
			return "", fmt.Errorf("%s is set but Redis is not reached through Sentinel: unset it, or configure %s and %s", EnvSentinelPassword, EnvSentinels, EnvMaster)
		}
		q := u.Query()
		q.Set(sentinelPasswordParam, sentinelPass)
		u.RawQuery = q.Encode()
	}
	switch useTLS {
	case "", "false":
	case "true":
		if scheme, ok := strings.CutPrefix(u.Scheme, "redis"); ok && !strings.HasPrefix(scheme, "s") {
			u.Scheme = "rediss" + scheme
		} else if u.Scheme == "unix" {
			return "", fmt.Errorf("%s=true but Redis is a unix socket: unset it, or reach Redis over TCP", EnvTLS)
		}
	default:
		return "", fmt.Errorf("%s=%q is not valid: set it to true or false, or unset it", EnvTLS, useTLS)
	}
	out := u.String()
	if _, err := Parse(out); err != nil {
		return "", errors.New("the Redis settings of the environment do not combine into a valid URL: " + err.Error())
	}
	return out, nil
}

func userinfo(user, password string) *url.Userinfo {
	switch {
	case password != "":
		return url.UserPassword(user, password)
	case user != "":
		return url.User(user)
	}
	return nil
}
