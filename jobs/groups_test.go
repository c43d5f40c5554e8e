package jobs

import (
	"context"
	"strconv"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Run(m) }

// Tasks that asynq put back into a group it no longer lists (a reclaimed
// aggregation set) are listed again, and only those groups.
func TestReviveGroups(t *testing.T) {
	ctx := context.Background()
	opts, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	e := &Enqueuer{Client: asynq.NewClientFromRedisClient(rdb)}
	const op = "00000000-0000-4000-8000-000000000001"
	users := make([]string, 9000) // three groups
	for i := range users {
		users[i] = "u" + strconv.Itoa(i)
	}
	if _, err := e.EnqueueGrouped(ctx, op, QueueBulk, users); err != nil {
		t.Fatal(err)
	}
	groupsKey := "asynq:{" + QueueBulk + "}:groups"
	// As asynq leaves it: the second group forgotten though it holds tasks.
	if err := rdb.SRem(ctx, groupsKey, GroupKey(op, 1)).Err(); err != nil {
		t.Fatal(err)
	}
	n, err := ReviveGroups(ctx, rdb, QueueBulk, op)
	if err != nil || n != 1 {
		t.Fatalf("ReviveGroups = %d, %v; want the one forgotten group", n, err)
	}
	got, err := rdb.SMembers(ctx, groupsKey).Result()
	if err != nil || len(got) != GroupsFor(len(users)) {
		t.Fatalf("groups listed = %v, %v; want the operation's %d", got, err, GroupsFor(len(users)))
	}
}
