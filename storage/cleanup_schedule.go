package storage

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a cleanup policy's 5-field cron expression in its time zone.
// It lives here, beside the policies, because the API (validation, next run),
// the scheduler (cron specs) and the run handler (which tick is due) must
// all read a schedule the same way.
type Schedule struct {
	spec     string
	zone     string
	schedule *cron.SpecSchedule
}

// cronParser accepts exactly the five standard fields: no seconds, no
// descriptors such as @every (whose ticks are not anchored to the clock, so
// "the latest tick" would mean nothing), and no TZ= prefix (time_zone says it).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// ParseSchedule checks a cron expression and an IANA time zone name.
func ParseSchedule(spec, zone string) (Schedule, error) {
	spec = strings.Join(strings.Fields(spec), " ")
	if zone == "" || zone == "Local" || len(zone) > 64 {
		return Schedule{}, fmt.Errorf("time_zone %q is not an IANA time zone name (for example Europe/Warsaw or UTC)", zone)
	}
	loc, err := loadZone(zone)
	if err != nil {
		return Schedule{}, fmt.Errorf("time_zone %q is not a known IANA time zone name (for example Europe/Warsaw or UTC)", zone)
	}
	if strings.Contains(spec, "TZ=") {
		return Schedule{}, fmt.Errorf("schedule %q must not name a time zone; use the time_zone field", spec)
	}
	if n := len(strings.Fields(spec)); n != 5 {
		return Schedule{}, fmt.Errorf("schedule %q has %d fields; use five: minute hour day-of-month month day-of-week, for example \"0 2 * * *\" for 02:00 every day", spec, n)
	}
	parsed, err := cronParser.Parse(spec)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %q is not a valid cron expression: %v", spec, err)
	}
	// The same as parsing Cronspec(spec, zone), without reading the zone
	// again on every parse.
	sched := parsed.(*cron.SpecSchedule)
	sched.Location = loc
	s := Schedule{spec: spec, zone: zone, schedule: sched}
	if s.Next(time.Now()).IsZero() {
		return Schedule{}, fmt.Errorf("schedule %q never fires (no such date in the next five years)", spec)
	}
	return s, nil
}

// zones caches time zones by name: the scheduler checks every policy's
// schedule at every sync, and time.LoadLocation reads the zone database
// each time.
var zones sync.Map // string → *time.Location

func loadZone(name string) (*time.Location, error) {
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	zones.Store(name, loc)
	return loc, nil
}

// Cronspec is the spec the asynq scheduler registers: the expression with
// its time zone, which the cron library understands as a CRON_TZ prefix.
func Cronspec(spec, zone string) string { return "CRON_TZ=" + zone + " " + spec }

// Spec is the normalized expression (single spaces).
func (s Schedule) Spec() string { return s.spec }

// Zone is the IANA time zone name.
func (s Schedule) Zone() string { return s.zone }

// Next is the first tick after t, in UTC; zero if none within five years.
func (s Schedule) Next(t time.Time) time.Time {
	n := s.schedule.Next(t)
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

// Latest is the last tick at or before t, in UTC; zero if there is none
// within five years. The cron library only steps forward, so it widens a
// window backwards from t until a tick falls in it, then steps forward
// through that window: when the window doubles, its newer half held no tick,
// so the steps are few even for dense schedules.
func (s Schedule) Latest(t time.Time) time.Time {
	t = t.Truncate(time.Second)
	for w := time.Minute; w <= 5*366*24*time.Hour; w *= 2 {
		// Next is strictly after its argument: start one second earlier
		// so that a tick exactly at t-w is seen.
		tick := s.schedule.Next(t.Add(-w - time.Second))
		if tick.IsZero() || tick.After(t) {
			continue
		}
		for {
			n := s.schedule.Next(tick)
			if n.IsZero() || n.After(t) {
				return tick.UTC()
			}
			tick = n
		}
	}
	return time.Time{}
}
