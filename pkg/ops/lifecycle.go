package ops

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/oklog/run"
)

// SignalActor returns a run.Group actor that ends with a *run.SignalError
// (errors.Is(err, run.ErrSignal)) when one of sigs arrives. Unlike
// run.SignalHandler it subscribes at once, not when the group starts its
// goroutine, so a signal sent as soon as the process said it is listening
// is not lost (nor kills the process by default).
func SignalActor(sigs ...os.Signal) (execute func() error, interrupt func(error)) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	execute = func() error {
		defer signal.Stop(ch)
		select {
		case s := <-ch:
			return &run.SignalError{Signal: s}
		case <-ctx.Done():
			return nil
		}
	}
	return execute, func(error) { cancel() }
}

// ContextActor returns a run.Group actor running fn until interrupted:
// interrupting cancels fn's context, and the actor then waits for fn to
// drain what it has in flight, up to grace (0: without a limit). Past grace
// it calls overrun (when set) and returns, leaving fn to the process's exit.
// ended is closed once the actor has returned: the ops server waits for it
// (see ServeActor) so that /metrics and /readyz answer during the drain.
func ContextActor(fn func(ctx context.Context) error, grace time.Duration, overrun func()) (execute func() error, interrupt func(error), ended <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	end := make(chan struct{})
	execute = func() error {
		defer close(end)
		done := make(chan error, 1)
		go func() { done <- fn(ctx) }()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
		}
		if grace <= 0 {
			return <-done
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case err := <-done:
			return err
		case <-t.C:
			if overrun != nil {
				overrun()
			}
			return nil
		}
	}
	return execute, func(error) { cancel() }, end
}

// ExitCode logs how a service's run group ended and returns its exit code:
// 0 when it stopped on a signal (or cleanly), 1 when a part failed.
func ExitCode(log *slog.Logger, name string, err error) int {
	if err != nil && !errors.Is(err, run.ErrSignal) {
		log.Error(name+" stopped", "error", err.Error())
		return 1
	}
	log.Info(name + " stopped")
	return 0
}
