package harvester

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/contract"
)

// failingDLQ fails its first `fail` writes (all when negative), moving the
// clock by step at each.
type failingDLQ struct {
	mu     sync.Mutex
	fail   int
	writes int
	clk    *clock.Sim
	step   time.Duration
}

func (f *failingDLQ) WriteMessages(ctx context.Context, _ ...contract.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if f.fail < 0 || f.writes <= f.fail {
		f.clk.Advance(f.step)
		return errors.New("kafka: broker not available")
	}
	return nil
}

// TestDeadLetterWriteRetriesWithBackoffCountedAndLogged (law 6): a dead
// letter that cannot be written is retried with a doubling, bounded pause,
// every failure counted, logged at most every 30 s; a shutdown stops it.
func TestDeadLetterWriteRetriesWithBackoffCountedAndLogged(t *testing.T) {
	clk := clock.NewSim(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC), 0, nil)
	reg := prometheus.NewRegistry()
	logs := &lineCounter{}
	w := &failingDLQ{fail: 9, clk: clk, step: 10 * time.Second}
	var waits []time.Duration
	d := newDeadLetters(w, clk.Now, slog.New(slog.NewJSONHandler(logs, nil)), NewMetrics(reg), func(_ context.Context, dur time.Duration) error {
		waits = append(waits, dur)
		return nil
	})
	if !d.Write(context.Background(), contract.Message{Key: []byte("megvii:x")}, "bad_value", "value is not an event") {
		t.Fatal("not written")
	}
	if got := metric(t, reg, "faceharvest_harvester_dead_letter_write_errors_total"); got != 9 {
		t.Fatalf("errors counted %v, want 9", got)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond,
		3200 * time.Millisecond, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
	// Failures 10 s apart: logged at the 1st, 4th and 7th (30 s apart), and
	// once when it finally went through.
	if n := logs.count("dead-letter write failed"); n != 3 {
		t.Fatalf("%d failure log lines for 9 failures over 90 s, want 3: %v", n, logs.lines)
	}
	if n := logs.count("written after failed tries"); n != 1 {
		t.Fatalf("%d recovery log lines", n)
	}

	// Shutdown: a write that never succeeds returns false once ctx ends.
	ctx, cancel := context.WithCancel(context.Background())
	never := &failingDLQ{fail: -1, clk: clk}
	tries := 0
	d2 := newDeadLetters(never, clk.Now, slog.New(slog.DiscardHandler), NewMetrics(nil), func(ctx context.Context, _ time.Duration) error {
		tries++
		cancel()     // the shutdown comes during the first back-off
		<-ctx.Done() // only ctx ends the wait
		return ctx.Err()
	})
	done := make(chan bool)
	go func() { done <- d2.Write(ctx, contract.Message{}, "bad_value", "x") }()
	select {
	case ok := <-done:
		if ok || tries != 1 || never.writes != 1 {
			t.Fatalf("written %v after %d writes and %d waits", ok, never.writes, tries)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("the dead-letter write did not stop on shutdown")
	}
}
