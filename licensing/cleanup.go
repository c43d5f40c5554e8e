package licensing

import "time"

// Cleanup rule kinds.
const (
	// RuleDisabledAccounts matches users whose account_enabled is false.
	RuleDisabledAccounts = "disabled_accounts"
	// RuleInactive matches users whose last sign-in (or, for users that never
	// signed in, whose creation in licenseops) is older than Days.
	RuleInactive = "inactive"
)

// Cleanup run triggers.
const (
	TriggerSchedule = "schedule"
	TriggerManual   = "manual"
)

// RunNothingMatched is the status of a run that matched no user and so
// started no operation.
const RunNothingMatched = "nothing_matched"

// RunBlocked is the status of a run that matched more users than its
// policy's limits allow and so changed none.
const RunBlocked = "blocked"

// The limits of a new cleanup policy that does not set its own: a run
// changes at most 500 users and at most 10 % of the customer's users.
const (
	DefaultCleanupMaxChanges = 500
	DefaultCleanupMaxPercent = 10.0
)

// CleanupRule picks the users a policy takes licenses back from, and which
// licenses.
type CleanupRule struct {
	Kind string `json:"kind"`
	// Days is the inactivity threshold of RuleInactive (nil otherwise).
	Days *int `json:"days,omitempty"`
	// SKUs limits what is taken back and whom the rule matches (users who
	// hold at least one of them); nil means every SKU the user holds.
	SKUs []string `json:"skus"`
	// ExcludeUserIDs are never matched.
	ExcludeUserIDs []string `json:"exclude_user_ids"`
}

// CleanupPolicy is a customer's scheduled cleanup.
type CleanupPolicy struct {
	ID          string      `json:"id"`
	PartnerKey  int64       `json:"-"`
	CustomerKey int64       `json:"-"`
	CustomerID  string      `json:"customer_id"`
	Name        string      `json:"name"`
	Schedule    string      `json:"schedule"`
	TimeZone    string      `json:"time_zone"`
	Rule        CleanupRule `json:"rule"`
	DryRun      bool        `json:"dry_run"`
	Enabled     bool        `json:"enabled"`
	// MaxChanges and MaxPercent bound a real run: one that matches more
	// users than MaxChanges, or than MaxPercent of the customer's users,
	// changes none (RunBlocked). Nil is no limit of that kind.
	MaxChanges *int     `json:"max_changes"`
	MaxPercent *float64 `json:"max_percent"`
	// ScheduleSince is the earliest instant a scheduled tick may have: the
	// creation, the last change of schedule or time zone, or the last
	// enabling, whichever is latest.
	ScheduleSince time.Time `json:"-"`
	CreatedBy     string    `json:"created_by"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// CleanupRun is one run of a policy with the progress of its operation.
type CleanupRun struct {
	ID       string `json:"id"`
	PolicyID string `json:"policy_id"`
	// Trigger is "schedule" (Tick is the cron tick it ran for) or "manual".
	Trigger      string     `json:"trigger"`
	Tick         *time.Time `json:"tick"`
	DryRun       bool       `json:"dry_run"`
	MatchedUsers int        `json:"matched_users"`
	OperationID  *string    `json:"operation_id"`
	// Status is the operation's status, "nothing_matched", or "blocked".
	Status string `json:"status"`
	// Limit is the most users the run could change, the smaller of the
	// policy's limits for the customer's size at the time (nil: no limit,
	// or a dry run, which changes nothing).
	Limit *int `json:"limit"`
	// Confirmed is a manual run told to go over the limit.
	Confirmed bool `json:"confirmed"`
	// ReclaimedSeats counts the licenses taken back from users whose
	// change succeeded (0 for a dry run).
	ReclaimedSeats int `json:"reclaimed_seats"`
	// WouldRevokeUsers and WouldReclaimSeats are a dry run's users marked
	// would_revoke and the licenses they would lose (0 for a real run).
	WouldRevokeUsers  int `json:"would_revoke_users"`
	WouldReclaimSeats int `json:"would_reclaim_seats"`
	// FailedUsers are users whose change failed (for example a license
	// another one they keep requires).
	FailedUsers int        `json:"failed_users"`
	CreatedAt   time.Time  `json:"created_at"`
	FinishedAt  *time.Time `json:"finished_at"`
}
