package console

import (
	"testing"

	"github.com/licenseops/licenseops/internal/redisconf"
)

// A session's keys are written and deleted together (one transaction, one
// DEL): in Redis Cluster they must hash to one slot.
func TestSessionKeysShareAHashSlot(t *testing.T) {
	s := &session{key: sessionKey("abc"), hash: "abc"}
	sel := (&Console{}).selection(s, "contoso")
	for _, key := range []string{s.key + ":selections", sel.key} {
		if got, want := redisconf.HashTag(key), redisconf.HashTag(s.key); got != want || want != "abc" {
			t.Errorf("key %q hashes on %q, want %q like the session's", key, got, want)
		}
	}
}
