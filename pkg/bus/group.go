package bus

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/faceharvest/faceharvest/pkg/retry"
)

// GroupConfig configures a consumer group.
type GroupConfig struct {
	Cluster                          Cluster
	GroupID                          string
	Topic                            string
	SessionTimeout, RebalanceTimeout time.Duration // 10 s, 30 s
	Logger                           *slog.Logger
	// Joined, when set, learns each generation before its partitions start.
	Joined func(gen *kafka.Generation)
}

// ConsumeGroup joins the group and, for every generation, runs onPartition
// for each partition assigned to this member, from its committed offset (-1
// when none). onPartition must return when its context ends (a rebalance or
// ctx). ConsumeGroup returns nil when ctx ends.
func ConsumeGroup(ctx context.Context, cfg GroupConfig, onPartition func(ctx context.Context, gen *kafka.Generation, partition int, offset int64)) error {
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.RebalanceTimeout <= 0 {
		cfg.RebalanceTimeout = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: cfg.GroupID, Brokers: cfg.Cluster.Brokers, Dialer: cfg.Cluster.Dialer(), Topics: []string{cfg.Topic},
		StartOffset: kafka.FirstOffset, HeartbeatInterval: cfg.SessionTimeout / 5, SessionTimeout: cfg.SessionTimeout,
		RebalanceTimeout: cfg.RebalanceTimeout, JoinGroupBackoff: 500 * time.Millisecond, WatchPartitionChanges: true,
		// kafka-go gives a JoinGroup Timeout + RebalanceTimeout before it gives
		// up; if that is no longer than the coordinator's own wait for members
		// that died mid-rebalance, every survivor times out just before the
		// group forms, rejoins as a new member and restarts the wait: the group
		// never forms. A generous Timeout lets the coordinator finish first.
		Timeout: cfg.RebalanceTimeout + 15*time.Second,
	})
	if err != nil {
		return err
	}
	defer group.Close()
	// A failed join is retried every second, logged each time.
	rejoin := retry.Policy{Backoff: retry.Backoff{Min: time.Second, Max: time.Second},
		OnFailure: func(_ int, err error, _ time.Duration) { log.Warn("consumer group", "error", err.Error()) }}
	for {
		var gen *kafka.Generation
		err := retry.Do(ctx, rejoin, func(int) (err error) {
			gen, err = group.Next(ctx)
			if errors.Is(err, kafka.ErrGroupClosed) {
				return retry.Permanent(err)
			}
			return err
		})
		if err != nil {
			return nil // ctx ended, or the group closed
		}
		log.Info("generation joined", "generation", gen.ID, "member", gen.MemberID, "partitions", len(gen.Assignments[cfg.Topic]))
		if cfg.Joined != nil {
			cfg.Joined(gen)
		}
		for _, a := range gen.Assignments[cfg.Topic] {
			gen.Start(func(gctx context.Context) { onPartition(gctx, gen, a.ID, a.Offset) })
		}
	}
}
