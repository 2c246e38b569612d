package bus

import (
	"context"
	"fmt"
	"sort"

	"github.com/segmentio/kafka-go"
)

// TopicSpec is a topic to create: its partitions, its replication factor
// and its topic-level settings (max.message.bytes, cleanup.policy, …).
type TopicSpec struct {
	Name       string
	Partitions int
	Replicas   int
	Configs    map[string]string
}

// ErrTopicExists is CreateTopic's error (errors.Is) when the topic exists
// already, or is still being deleted.
var ErrTopicExists error = kafka.TopicAlreadyExists

// CreateTopic creates one topic as spec says.
func CreateTopic(ctx context.Context, cl Cluster, spec TopicSpec) error {
	if spec.Partitions < 1 || spec.Replicas < 1 {
		return fmt.Errorf("topic %q: %d partitions, %d replicas: at least 1 of each", spec.Name, spec.Partitions, spec.Replicas)
	}
	names := make([]string, 0, len(spec.Configs))
	for n := range spec.Configs {
		names = append(names, n)
	}
	sort.Strings(names)
	var cfgs []kafka.ConfigEntry
	for _, n := range names {
		cfgs = append(cfgs, kafka.ConfigEntry{ConfigName: n, ConfigValue: spec.Configs[n]})
	}
	resp, err := cl.Client(adminWait).CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: spec.Name, NumPartitions: spec.Partitions, ReplicationFactor: spec.Replicas, ConfigEntries: cfgs}}})
	if err != nil {
		return fmt.Errorf("creating topic %q: %w", spec.Name, err)
	}
	if err := resp.Errors[spec.Name]; err != nil {
		return fmt.Errorf("creating topic %q: %w", spec.Name, err)
	}
	return nil
}

// DeleteTopic deletes topic and every message in it.
func DeleteTopic(ctx context.Context, cl Cluster, topic string) error {
	resp, err := cl.Client(adminWait).DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("deleting topic %q: %w", topic, err)
	}
	if err := resp.Errors[topic]; err != nil {
		return fmt.Errorf("deleting topic %q: %w", topic, err)
	}
	return nil
}
