package archiver

import (
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
)

// DefaultConfig returns the archiver settings' defaults (no store): the
// flags take theirs from it, and New fills a zero field from it. An empty
// SpoolDir is the system's temporary directory.
func DefaultConfig() Config {
	return Config{
		MaxImageBytes:   20 << 20,
		MaxMediaBytes:   1 << 30,
		DownloadTries:   3,
		DownloadTimeout: 10 * time.Minute,
		MediaParallel:   4,
		RetryMin:        200 * time.Millisecond,
		RetryMax:        10 * time.Second,
		Source:          "/archiver",
	}
}

// DefaultRunConfig returns the consumer's defaults (no cluster, group or
// topics): the flags take theirs from it, and NewRunner fills a zero field
// from it. The commit interval and the group's timeouts are pkg/bus's.
func DefaultRunConfig() RunConfig {
	group, part := bus.DefaultGroupConfig(), bus.DefaultPartitionConfig()
	return RunConfig{
		Workers:          8,
		CommitInterval:   part.CommitInterval,
		HoldLimit:        2 * time.Minute,
		DrainTimeout:     20 * time.Second,
		SessionTimeout:   group.SessionTimeout,
		RebalanceTimeout: group.RebalanceTimeout,
		DLQPayload:       bus.PayloadInline,
	}
}
