package bus

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// A zero size, interval or timeout is refused, naming the field and the
// default to start from; nothing is read and no group is joined. The
// defaults themselves, given the partition's or group's own fields, are
// valid.
func TestZeroConfigFieldsAreRefused(t *testing.T) {
	part := func(f func(*PartitionConfig)) PartitionConfig {
		c := DefaultPartitionConfig()
		c.Topic, c.Partition, c.Commit = "faceid.raw", 3, func(int64) error { return nil }
		f(&c)
		return c
	}
	if err := part(func(*PartitionConfig) {}).Validate(); err != nil {
		t.Fatalf("the defaults with a topic and a commit: %v", err)
	}
	for _, c := range []struct {
		name string
		cfg  PartitionConfig
		want string
	}{
		{"MaxBytes", part(func(c *PartitionConfig) { c.MaxBytes = 0 }), "MaxBytes 0: want more than 0 (DefaultPartitionConfig has 16777216)"},
		{"CommitInterval", part(func(c *PartitionConfig) { c.CommitInterval = 0 }), "CommitInterval 0s: want more than 0 (DefaultPartitionConfig has 200ms)"},
		{"LagEvery", part(func(c *PartitionConfig) { c.LagEvery = 0 }), "LagEvery 0s: want more than 0 (DefaultPartitionConfig has 5s)"},
		{"commit", part(func(c *PartitionConfig) { c.Commit = nil }), "neither Commit nor Generation"},
		{"zero value", PartitionConfig{}, "no topic"},
	} {
		t.Run(c.name, func(t *testing.T) {
			drained := false
			c.cfg.Drain = func() { drained = true }
			read := false
			last, err := ConsumePartition(context.Background(), c.cfg, func(context.Context, contract.Message, *Offsets) bool { read = true; return false })
			if err == nil || !strings.Contains(err.Error(), c.want) || err.Error() != c.cfg.Validate().Error() {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
			if last != -1 || read || !drained {
				t.Fatalf("committed %d, read %v, drained %v: want -1, nothing read, drained", last, read, drained)
			}
		})
	}

	group := DefaultGroupConfig()
	group.GroupID, group.Topic = "faceharvest-archiver", "faceid.raw"
	if err := group.Validate(); err != nil {
		t.Fatalf("the group defaults with a group and topic: %v", err)
	}
	group.SessionTimeout = 0
	joined := false
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := ConsumeGroup(ctx, group, func(context.Context, *Generation, int, int64) { joined = true })
	if want := `consumer group "faceharvest-archiver": SessionTimeout 0s: want more than 0 (DefaultGroupConfig has 10s)`; err == nil || err.Error() != want || joined {
		t.Fatalf("group with a zero session timeout: %v (joined %v), want %q", err, joined, want)
	}
	group.SessionTimeout, group.RebalanceTimeout = time.Second, 0
	if err := group.Validate(); err == nil || !strings.Contains(err.Error(), "RebalanceTimeout 0s") {
		t.Fatalf("zero rebalance timeout: %v", err)
	}
}
