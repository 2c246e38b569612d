package ops

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/oklog/run"
)

// The first actor to end stops the rest; the ops server's stop waits for
// the work to drain, and a signal ends the group with run.ErrSignal.
func TestGroupDrainsBeforeOpsStop(t *testing.T) {
	var g run.Group
	g.Add(SignalActor(syscall.SIGUSR1))
	var drainedFirst bool
	work, stop, ended := ContextActor(func(ctx context.Context) error {
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // in-flight work finishing
		return nil
	}, 0, nil)
	g.Add(work, stop)
	quit := make(chan struct{})
	g.Add(func() error { <-quit; return nil }, func(error) {
		<-ended
		drainedFirst = true
		close(quit)
	})
	go func() { _ = syscall.Kill(syscall.Getpid(), syscall.SIGUSR1) }()
	err := g.Run()
	if !errors.Is(err, run.ErrSignal) || !drainedFirst {
		t.Fatalf("err %v, drained before the ops stop: %v", err, drainedFirst)
	}
}

// Past its grace a draining actor gives up, says so, and returns.
func TestContextActorGrace(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	overran := false
	work, stop, _ := ContextActor(func(ctx context.Context) error { <-block; return nil }, 10*time.Millisecond, func() { overran = true })
	stop(nil)
	if err := work(); err != nil || !overran {
		t.Fatalf("err %v, overran %v", err, overran)
	}
	boom := errors.New("boom")
	work, _, _ = ContextActor(func(ctx context.Context) error { return boom }, time.Second, nil)
	if err := work(); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}
