package harvester

import (
	"errors"
	"sync"
)

// startup tracks whether the harvester has started: the partitions of a
// generation it joined are all restored (a standby replica's generation may
// give it none). Later rebalances restore again but never unstart it, so a
// rebalance, which every replica sees at once, leaves them all ready.
type startup struct {
	mu      sync.Mutex
	gen     int32
	left    int
	started bool
}

func (s *startup) joined(gen int32, partitions int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen, s.left = gen, partitions
	s.started = s.started || partitions == 0
}

func (s *startup) restored(gen int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen == s.gen {
		s.left--
		s.started = s.started || s.left <= 0
	}
}

var errStarting = errors.New("joining the consumer group and restoring its partitions' state")

func (s *startup) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return errStarting
	}
	return nil
}

// Started returns nil once the harvester has joined its group and restored
// every partition of that generation (a readiness check: the Deployment's
// startupProbe gives a restore of a million pending verifications its time).
func (h *Harvester) Started() error { return h.start.err() }
