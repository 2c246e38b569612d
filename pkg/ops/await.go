package ops

import (
	"context"
	"log/slog"
	"time"

	"github.com/faceharvest/faceharvest/pkg/retry"
)

// Await calls try, 10 s at most each time, once a second until it succeeds,
// ctx ends (ctx.Err()) or wait has passed (try's last error, logged as the
// refusal to start): services wait at start for brokers, topics and stores
// that may come up after them.
func Await(ctx context.Context, log *slog.Logger, wait time.Duration, what string, try func(ctx context.Context) error) error {
	deadline := time.Now().Add(wait)
	p := retry.Policy{Backoff: retry.Backoff{Min: time.Second, Max: time.Second},
		OnFailure: func(_ int, err error, _ time.Duration) { log.Warn("waiting for "+what, "error", err.Error()) }}
	err := retry.Do(ctx, p, func(int) error {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := try(tctx)
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return retry.Permanent(ctx.Err())
		case time.Now().After(deadline):
			log.Error("refusing to start", "error", err.Error())
			return retry.Permanent(err)
		}
		return err
	})
	if err != nil && ctx.Err() != nil {
		return ctx.Err() // also when it ended during a wait
	}
	return err
}
