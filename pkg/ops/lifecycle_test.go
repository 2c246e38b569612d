package ops

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/oklog/run"
)

// The first actor to end stops the rest; the ops server's stop waits for
// the work to drain, and a signal ends the group with run.ErrSignal.
//
// The work's in-flight part cannot finish until the ops stop has begun
// waiting: ended closing before that (a drain cut short) is seen for what
// it is. That ended stays open for 100 ms while the work is held cannot
// fail on a slow machine (nothing but the work's return closes it); the
// 100 ms only give a broken drain the time to show itself.
func TestGroupDrainsBeforeOpsStop(t *testing.T) {
	var g run.Group
	g.Add(SignalActor(syscall.SIGUSR1))
	var finished atomic.Bool
	release := make(chan struct{})
	work, stop, ended := ContextActor(func(ctx context.Context) error {
		<-ctx.Done()
		<-release // in-flight work finishing
		finished.Store(true)
		return nil
	}, 0, nil)
	g.Add(work, stop)
	quit := make(chan struct{})
	var endedEarly, finishedFirst bool
	g.Add(func() error { <-quit; return nil }, func(error) {
		select {
		case <-ended:
			endedEarly = true
		case <-time.After(100 * time.Millisecond):
		}
		close(release)
		<-ended
		finishedFirst = finished.Load()
		close(quit)
	})
	go func() { _ = syscall.Kill(syscall.Getpid(), syscall.SIGUSR1) }()
	err := g.Run()
	if !errors.Is(err, run.ErrSignal) || endedEarly || !finishedFirst {
		t.Fatalf("err %v; the work ended before its in-flight part finished: %v; it had finished when the ops stop went on: %v", err, endedEarly, finishedFirst)
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
