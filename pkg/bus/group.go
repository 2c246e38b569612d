package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/faceharvest/faceharvest/pkg/retry"
)

// GroupConfig configures a consumer group. Start from DefaultGroupConfig and
// set the group's fields: a zero timeout is refused (Validate), not
// defaulted.
type GroupConfig struct {
	Cluster                          Cluster
	GroupID                          string
	Topic                            string
	SessionTimeout, RebalanceTimeout time.Duration
	Logger                           *slog.Logger
	// Joined, when set, learns each generation before its partitions start.
	Joined func(gen *Generation)
}

// Generation is one generation of a consumer group as this member sees it:
// its id and the partitions of the group's topic assigned to this member.
// A partition consumer commits its offsets through it.
type Generation struct {
	ID         int32
	MemberID   string
	Partitions []int
	kg         *kafka.Generation
}

// commit commits next as the offset of topic's partition p.
func (g *Generation) commit(topic string, p int, next int64) error {
	return g.kg.CommitOffsets(map[string]map[int]int64{topic: {p: next}})
}

// DefaultGroupConfig returns a consumer group's defaults (no cluster, group
// or topic): the components' defaults take theirs from it.
func DefaultGroupConfig() GroupConfig {
	return GroupConfig{SessionTimeout: 10 * time.Second, RebalanceTimeout: 30 * time.Second}
}

// Validate says what in cfg cannot work.
func (cfg GroupConfig) Validate() error {
	var errs []error
	if cfg.GroupID == "" {
		errs = append(errs, errors.New("no group id"))
	}
	if cfg.Topic == "" {
		errs = append(errs, errors.New("no topic"))
	}
	if cfg.SessionTimeout <= 0 {
		errs = append(errs, fmt.Errorf("SessionTimeout %s: want more than 0 (DefaultGroupConfig has %s)", cfg.SessionTimeout, DefaultGroupConfig().SessionTimeout))
	}
	if cfg.RebalanceTimeout <= 0 {
		errs = append(errs, fmt.Errorf("RebalanceTimeout %s: want more than 0 (DefaultGroupConfig has %s)", cfg.RebalanceTimeout, DefaultGroupConfig().RebalanceTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("consumer group %q: %w", cfg.GroupID, err)
	}
	return nil
}

// ConsumeGroup joins the group and, for every generation, runs onPartition
// for each partition assigned to this member, from its committed offset (-1
// when none). onPartition must return when its context ends (a rebalance or
// ctx). ConsumeGroup returns nil when ctx ends, and at once the error of a
// cfg that does not Validate.
func ConsumeGroup(ctx context.Context, cfg GroupConfig, onPartition func(ctx context.Context, gen *Generation, partition int, offset int64)) error {
	if err := cfg.Validate(); err != nil {
		return err
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
		var kg *kafka.Generation
		err := retry.Do(ctx, rejoin, func(int) (err error) {
			kg, err = group.Next(ctx)
			if errors.Is(err, kafka.ErrGroupClosed) {
				return retry.Permanent(err)
			}
			return err
		})
		if err != nil {
			return nil // ctx ended, or the group closed
		}
		gen := &Generation{ID: kg.ID, MemberID: kg.MemberID, kg: kg}
		for _, a := range kg.Assignments[cfg.Topic] {
			gen.Partitions = append(gen.Partitions, a.ID)
		}
		log.Info("generation joined", "generation", gen.ID, "member", gen.MemberID, "partitions", len(gen.Partitions))
		if cfg.Joined != nil {
			cfg.Joined(gen)
		}
		for _, a := range kg.Assignments[cfg.Topic] {
			kg.Start(func(gctx context.Context) { onPartition(gctx, gen, a.ID, a.Offset) })
		}
	}
}

// GroupState returns a consumer group's state as its coordinator tells it
// (Stable, PreparingRebalance, Empty, ...) and how many members it has.
func GroupState(ctx context.Context, cl Cluster, group string) (state string, members int, err error) {
	resp, err := cl.Client(5*time.Second).DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return "", 0, err
	}
	if len(resp.Groups) != 1 {
		return "", 0, fmt.Errorf("describe group %s: %d groups in the answer", group, len(resp.Groups))
	}
	g := resp.Groups[0]
	if g.Error != nil {
		return "", 0, fmt.Errorf("describe group %s: %w", group, g.Error)
	}
	return g.GroupState, len(g.Members), nil
}
