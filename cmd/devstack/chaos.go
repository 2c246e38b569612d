package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"
)

// chaosKind is what a chaos step does.
type chaosKind string

const (
	// chaosKill SIGKILLs a component and starts it again.
	chaosKill chaosKind = "kill"
	// chaosKillStable SIGKILLs a harvester once its group is stable: the
	// embedded broker never expires a member killed between its JoinGroup
	// and the response (docs/known-issues.md), which real Kafka does.
	chaosKillStable chaosKind = "kill when its group is stable"
	// chaosKillLedger SIGKILLs the integrator once its group is stable
	// (maybe between a batch's tiles and its checkpoint).
	chaosKillLedger chaosKind = "kill the ledger"
	// chaosStopBroker stops the broker (SIGTERM) and starts it again from
	// its data directory.
	chaosStopBroker chaosKind = "stop and restart"
	// chaosStoreOutage stops the object store for at least 5 s, and until
	// an archiver has met the outage (at most 30 s).
	chaosStoreOutage chaosKind = "store outage"
)

// chaosStep is one step of --chaos: it runs once the workload has run for
// At and at least Harvested records are harvested, after the steps before
// it.
type chaosStep struct {
	Kind      chaosKind     `json:"kind"`
	Target    string        `json:"target"`
	At        time.Duration `json:"at_ns"`
	Harvested int           `json:"after_harvested"`
}

func (c chaosStep) String() string { return fmt.Sprintf("%s %s", c.Kind, c.Target) }

// planChaos plans --chaos from seed: an archiver killed 3-9 s into the
// workload, a harvester 10-16 s, ingest 17-22 s (random replicas at random
// moments in windows that keep their order), then the ledger after 2
// records harvested, the broker after 3 and the object store after 10.
// The same seed and replicas give the same plan.
func planChaos(seed uint64, replicas int) []chaosStep {
	rng := rand.New(rand.NewPCG(seed, seed))
	replica := func(name string) string {
		if i := 1 + rng.IntN(replicas); i > 1 {
			return fmt.Sprintf("%s-%d", name, i)
		}
		return name
	}
	within := func(from, to time.Duration) time.Duration { return from + time.Duration(rng.Int64N(int64(to-from))) }
	archiver, harvester := replica("archiver"), replica("harvester")
	return []chaosStep{
		{Kind: chaosKill, Target: archiver, At: within(3*time.Second, 9*time.Second)},
		{Kind: chaosKillStable, Target: harvester, At: within(10*time.Second, 16*time.Second)},
		{Kind: chaosKill, Target: "ingest", At: within(17*time.Second, 22*time.Second)},
		{Kind: chaosKillLedger, Target: "ledger", Harvested: 2},
		{Kind: chaosStopBroker, Target: "devkafka", Harvested: 3},
		{Kind: chaosStoreOutage, Target: "store", Harvested: 10},
	}
}

// due reports whether the step may run after elapsed with harvested
// records harvested.
func (c chaosStep) due(elapsed time.Duration, harvested int) bool {
	return elapsed > c.At && harvested >= c.Harvested
}

// runChaos carries out one step.
func (s *stack) runChaos(ctx context.Context, c chaosStep) error {
	switch c.Kind {
	case chaosKill:
		return s.restart(c.Target, syscall.SIGKILL)
	case chaosKillStable:
		if err := s.waitGroupStable(ctx, "faceharvest-harvester", s.o.replicas, time.Minute); err != nil {
			return err
		}
		return s.restart(c.Target, syscall.SIGKILL)
	case chaosKillLedger:
		return s.killLedger(ctx)
	case chaosStopBroker:
		return s.restart(c.Target, syscall.SIGTERM)
	case chaosStoreOutage:
		return s.storeOutage(ctx, 5*time.Second)
	}
	return fmt.Errorf("chaos: no step %q", c.Kind)
}
