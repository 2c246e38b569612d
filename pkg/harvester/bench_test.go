package harvester

import (
	"fmt"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/schedule"
)

// BenchmarkAddPartition installs 100,000 restored Megvii verifications
// waiting for their callbacks (queued and frozen), the engine's share of a
// restore; the bytes reported are the engine's, per verification.
func BenchmarkAddPartition(b *testing.B) {
	const n = 100_000
	pol := schedule.Defaults()
	base := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	states := make([]*schedule.State, n)
	for i := range states {
		issued := base.Add(-time.Duration(i%3600) * time.Second)
		states[i] = pol.Apply(nil, contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii, VerificationID: fmt.Sprintf("%08x-bench", i),
			BizNo: fmt.Sprintf("order-%d", i), IssuedAt: &issued, ReceivedAt: issued})
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		recs := make(map[string]*StateRecord, n)
		for _, st := range states {
			cp := *st
			recs[st.Key()] = &StateRecord{State: &cp}
		}
		e := NewEngine(engineConfig(func(c *EngineConfig) {
			c.Policy, c.Callers, c.Now = pol, map[contract.Vendor]Caller{contract.Megvii: &fakeCaller{answer: okAnswer}}, func() time.Time { return base }
		}))
		b.StartTimer()
		e.AddPartition(0, recs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/verification")
}
