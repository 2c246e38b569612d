package ops

import (
	"context"
	"log/slog"
	"time"
)

// Await calls try, 10 s at most each time, once a second until it succeeds,
// ctx ends (ctx.Err()) or wait has passed (try's last error, logged as the
// refusal to start): services wait at start for brokers, topics and stores
// that may come up after them.
func Await(ctx context.Context, log *slog.Logger, wait time.Duration, what string, try func(ctx context.Context) error) error {
	deadline := time.Now().Add(wait)
	for {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := try(tctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			log.Error("refusing to start", "error", err.Error())
			return err
		}
		log.Warn("waiting for "+what, "error", err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
