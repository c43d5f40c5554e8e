package jobs

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// reviveGroupsScript lists again in KEYS[1] (a queue's set of groups) each
// group ARGV[i] whose key KEYS[i+1] holds tasks, and returns how many it
// added.
var reviveGroupsScript = redis.NewScript(`
local n = 0
for i, name in ipairs(ARGV) do
  if redis.call('ZCARD', KEYS[i + 1]) > 0 then
    n = n + redis.call('SADD', KEYS[1], name)
  end
end
return n
`)

// ReviveGroups makes asynq aggregate again the tasks left in the groups of
// an operation, and returns how many groups it revived.
//
// asynq (v0.26) forgets a group (takes it out of the queue's set of groups,
// asynq:{queue}:groups) when an aggregation empties it. When the batch of
// an aggregation is never enqueued (Redis failed over or a worker died
// between the two steps), asynq reclaims the tasks two minutes later and
// puts them back into the group, but does not list the group again: no
// aggregator looks at it, and their items would wait forever, since the
// sweeper cannot enqueue tasks whose IDs asynq still holds. The sweeper
// calls this for a stalled operation.
//
// It reads asynq's key layout, which asynq's hash tags ({queue}) keep in
// one slot of a Redis Cluster.
func ReviveGroups(ctx context.Context, rdb redis.UniversalClient, queue, operationID string) (int, error) {
	keys := []string{"asynq:{" + queue + "}:groups"}
	names := make([]any, 0, maxGroups)
	for shard := range maxGroups {
		name := GroupKey(operationID, shard)
		keys, names = append(keys, "asynq:{"+queue+"}:g:"+name), append(names, name)
	}
	n, err := reviveGroupsScript.Run(ctx, rdb, keys, names...).Int()
	if err != nil {
		return 0, fmt.Errorf("revive the asynq groups of operation %s: %w", operationID, err)
	}
	return n, nil
}
