// Package bus holds the Kafka plumbing every component shares: writers tuned
// for acknowledged, batched publishing, topic checks, and writer metrics.
package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// WriterConfig tunes a writer. Zero values take the defaults noted.
type WriterConfig struct {
	Cluster      Cluster
	Topic        string
	BatchTimeout time.Duration // how long a partial batch waits for company (2 ms; kafka-go's own default is 1 s)
	BatchSize    int           // messages per batch (1000)
	BatchBytes   int64         // bytes per request (1 MiB); raise with the topic's max.message.bytes
	MaxAttempts  int           // attempts per batch before WriteMessages fails (3)
	// ByPartition writes each message to the partition it names (state
	// records beside the events they came from) instead of by key.
	ByPartition bool
}

// NewWriter returns a synchronous writer: WriteMessages returns only when
// every message was acknowledged by all in-sync replicas (acks=all), or
// failed. Concurrent callers share batches. Keys are partitioned with
// murmur2, as the Java client does, so other producers agree on partitions
// (unless cfg.ByPartition).
func NewWriter(cfg WriterConfig) *Writer {
	def := DefaultWriterConfig()
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = def.BatchTimeout
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = def.BatchSize
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = def.BatchBytes
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = def.MaxAttempts
	}
	obs := newWriterObserver()
	var balancer kafka.Balancer = &kafka.Murmur2Balancer{}
	if cfg.ByPartition {
		balancer = explicitPartition{}
	}
	return &Writer{obs: obs, kw: &kafka.Writer{
		Addr:            kafka.TCP(cfg.Cluster.Brokers...),
		Topic:           cfg.Topic,
		Balancer:        balancer,
		RequiredAcks:    kafka.RequireAll,
		BatchTimeout:    cfg.BatchTimeout,
		BatchSize:       cfg.BatchSize,
		BatchBytes:      cfg.BatchBytes,
		MaxAttempts:     cfg.MaxAttempts,
		WriteBackoffMin: 50 * time.Millisecond,
		WriteBackoffMax: 500 * time.Millisecond,
		Transport:       &observedTransport{next: cfg.Cluster.Transport(), obs: obs},
		Completion:      obs.completed,
	}}
}

// explicitPartition sends each message to the partition it names.
type explicitPartition struct{}

func (explicitPartition) Balance(msg kafka.Message, partitions ...int) int { return msg.Partition }

// SplitBrokers parses a comma-separated host:port list.
func SplitBrokers(s string) ([]string, error) {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b == "" {
			continue
		}
		if !strings.Contains(b, ":") {
			return nil, fmt.Errorf("broker %q: want host:port", b)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, errors.New("no Kafka brokers given")
	}
	return out, nil
}

// CheckTopics asks the brokers for the topics' metadata and fails unless all
// exist: the readiness check of every component.
func CheckTopics(ctx context.Context, cl Cluster, topics ...string) error {
	c := cl.Client(2 * time.Second)
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("kafka metadata: %w", err)
	}
	found := map[string]bool{}
	for _, t := range md.Topics {
		if t.Error == nil && len(t.Partitions) > 0 {
			found[t.Name] = true
		}
	}
	for _, t := range topics {
		if !found[t] {
			return fmt.Errorf("topic %q does not exist", t)
		}
	}
	return nil
}

// TopicSettings reads a topic's effective settings (names as in Kafka's
// topic configuration, e.g. cleanup.policy, max.message.bytes).
func TopicSettings(ctx context.Context, cl Cluster, topic string, names ...string) (map[string]string, error) {
	c := cl.Client(5 * time.Second)
	resp, err := c.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: names}}})
	if err != nil {
		return nil, fmt.Errorf("settings of topic %q: %w", topic, err)
	}
	out := map[string]string{}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return nil, fmt.Errorf("settings of topic %q: %w", topic, r.Error)
		}
		for _, e := range r.ConfigEntries {
			out[e.ConfigName] = e.ConfigValue
		}
	}
	return out, nil
}
