// Package faults holds licenseops' fault suite: "faults lose nothing".
//
// Each test runs a rollout of a few thousand users through the HTTP API with
// real processes of the licenseops binary (api and workers, built with
// -tags faultinject), injects one fault in the middle of it, waits (bounded)
// until the operation finishes, and then runs the invariant checker
// (`licenseops check`) and its own asserts: every user terminal, exactly the
// seats that were available handed out, consumed seats equal to assignments.
// It logs how long the system took from the fault to the finished operation;
// README.md ("Guarantees and recovery times") quotes those figures.
//
// The faults: a worker killed with SIGKILL, a worker stopped with SIGTERM,
// Redis restarted with and without persistence, Postgres backends terminated
// and Postgres restarted, the api dying between the commit of an operation
// and the enqueue of its tasks (a fail point compiled into the faultinject
// build only), a storm of 429s, 5xx and timeouts from the Graph simulator,
// the same task delivered twice at once to two workers, three workers
// with two apis racing assigns and revokes for fewer seats than users, and
// the Redis primary killed under Sentinel (a failover to its replica), an
// asynq group left as an aggregation interrupted by such a failover. One
// test runs licenseops on a Redis Cluster instead of injecting a fault: a
// rollout, a cleanup run and the Graph pacing across two workers.
//
// The tests stop and restart the private Postgres and Redis servers of
// internal/testenv, so they never call t.Parallel and skip when those servers
// come from TEST_DATABASE_URL or TEST_REDIS_URL. The Sentinel and Cluster
// tests start Redis servers and sentinels of their own (testenv.RedisSentinel,
// testenv.RedisCluster) on free ports. The package has only test
// files behind the faultinject build tag; run it with
//
//	make test-faults   # go test -tags faultinject -race -count=1 -timeout 15m ./faults/...
package faults
