package licensing

// Readiness is what a process's /readyz says: whether Postgres and Redis
// answer ("ok" or the error), and which workers are alive.
type Readiness struct {
	Postgres string `json:"postgres"`
	Redis    string `json:"redis"`
	// RedisMode is how Redis is deployed: single, sentinel or cluster.
	RedisMode string `json:"redis_mode"`
	// RedisPrimary is "ok" when a primary takes writes (in Sentinel mode
	// the server Sentinel names says it is one; in Cluster mode every hash
	// slot has one), else why not; empty when Redis does not answer.
	RedisPrimary string `json:"redis_primary,omitempty"`
	// Workers is nil when Redis does not answer.
	Workers *WorkersAlive `json:"workers,omitempty"`
}

// WorkersAlive counts the worker processes whose heartbeat is in Redis now.
type WorkersAlive struct {
	Alive int `json:"alive"`
	// Concurrency is the tasks the live workers handle at once, together.
	Concurrency int `json:"concurrency"`
	// Message is set when no worker is alive: operations are accepted but
	// stay queued.
	Message string `json:"message,omitempty"`
}
