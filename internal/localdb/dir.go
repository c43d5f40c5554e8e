package localdb

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
)

// Dir is a new temporary directory for the data of private servers. It holds
// a lock file, flocked until Remove or the death of the process, that tells
// live directories from those of processes that died without removing theirs:
// NewDir removes the latter.
type Dir struct {
	path string

	mu      sync.Mutex
	lock    *os.File
	removed bool
}

// dirPrefix starts the name of every Dir. Directories named with
// legacyPrefixes, which older code made with the same lock file, are
// removed when stale too.
const dirPrefix = "licenseops-localdb-"

var legacyPrefixes = []string{"licenseops-testenv-"}

// shmDir is a memory file system, where Postgres creates databases many
// times faster than on a disk.
const shmDir = "/dev/shm"

// NewDir creates a Dir in parent, or when parent is "", in $TMPDIR when it
// is set, else in /dev/shm when it is a tmpfs with at least 1 GiB free (Docker
// gives containers 64 MiB), else in the usual temporary directory. It first
// removes the stale directories of processes that died without removing
// theirs.
func NewDir(parent string) (*Dir, error) {
	parents := defaultParents()
	if parent != "" {
		var err error
		if parent, err = filepath.Abs(parent); err != nil {
			return nil, fmt.Errorf("localdb: %w", err)
		}
		// #nosec G301 -- as root, the servers run as the postgres user, which must traverse it (see reachable)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return nil, fmt.Errorf("localdb: %w", err)
		}
		parents = []string{parent}
	}
	removeStale(parent)
	var path string
	var err error
	for _, p := range parents {
		path, err = os.MkdirTemp(p, fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("localdb: %w", err)
	}
	// The lock is taken before the file gets the name removeStale looks
	// for, so that a directory is never seen unlocked while it is alive.
	f, err := os.Create(filepath.Join(path, "lock.new")) // #nosec G304 -- in the directory MkdirTemp just made
	if err == nil {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			err = os.Rename(f.Name(), filepath.Join(path, "lock"))
		}
		if err != nil {
			_ = f.Close()
		}
	}
	if err != nil {
		_ = os.RemoveAll(path) // the lock error is the one to report
		return nil, fmt.Errorf("localdb: lock %s: %w", path, err)
	}
	return &Dir{path: path, lock: f}, nil
}

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

// Remove deletes the directory; the servers that use it must have been
// stopped. Removing it again does nothing.
func (d *Dir) Remove() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removed {
		return nil
	}
	d.removed = true
	err := os.RemoveAll(d.path)
	_ = d.lock.Close() // only releases the flock
	if err != nil {
		return fmt.Errorf("localdb: remove %s: %w", d.path, err)
	}
	return nil
}

// defaultParents returns where NewDir("") puts the directory, best first.
func defaultParents() []string {
	if os.Getenv("TMPDIR") != "" {
		return []string{os.TempDir()}
	}
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	if syscall.Statfs(shmDir, &st) == nil && st.Type == tmpfsMagic && uint64(st.Bavail)*uint64(st.Bsize) >= 1<<30 { // #nosec G115 -- the kernel's block size is positive
		return []string{shmDir, os.TempDir()}
	}
	return []string{os.TempDir()}
}

// removeStale removes the directories (in /dev/shm, the temporary directory
// and parent) of processes that died without removing them: their lock is
// no longer held.
func removeStale(parent string) {
	var dirs []string
	parents := []string{shmDir, os.TempDir()}
	if parent != "" && !slices.Contains(parents, parent) {
		parents = append(parents, parent)
	}
	for _, p := range parents {
		for _, prefix := range append([]string{dirPrefix}, legacyPrefixes...) {
			m, _ := filepath.Glob(filepath.Join(p, prefix+"*"))
			dirs = append(dirs, m...)
		}
	}
	for _, d := range dirs {
		f, err := os.Open(filepath.Join(d, "lock")) // #nosec G304 -- d is one of our directories, found by its prefix
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			_ = os.RemoveAll(d) // best effort: the next NewDir tries again
		}
		_ = f.Close()
	}
}
