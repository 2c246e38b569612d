package rungroup

import (
	"context"
	"fmt"
	"os"
	"os/signal"
)

// SignalError reports the signal that stopped the group.
type SignalError struct{ Signal os.Signal }

func (e SignalError) Error() string { return fmt.Sprintf("received %s", e.Signal) }

// SignalActor returns an actor that ends with a SignalError when one of sigs
// arrives.
func SignalActor(sigs ...os.Signal) (run func() error, interrupt func(error)) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	run = func() error {
		defer signal.Stop(ch)
		select {
		case s := <-ch:
			return SignalError{s}
		case <-ctx.Done():
			return nil
		}
	}
	return run, func(error) { cancel() }
}
