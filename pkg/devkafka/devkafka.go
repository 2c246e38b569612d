// Package devkafka runs an embedded Kafka-protocol broker (kfake) on
// loopback for development, tests and demos. It speaks the real wire
// protocol over TCP, so the components use it exactly as they would a
// production cluster; with a data directory it keeps its data across
// restarts.
package devkafka

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Config configures a Broker.
type Config struct {
	Host            string   // listen host (127.0.0.1)
	Port            int      // 0 picks a free port
	DataDir         string   // persist here; "" keeps everything in memory
	SyncWrites      bool     // fsync every produce (slower; survives power loss)
	Partitions      int32    // of seeded and auto-created topics (3)
	Topics          []string // created at start
	MaxMessageBytes int      // message.max.bytes (1 MiB + overhead when 0)
	RetentionBytes  int64    // log.retention.bytes per partition, enforced by ApplyRetention; 0 keeps everything
	// Compacted lists topics (of Topics) created with cleanup.policy=compact,
	// as the harvester's state topic must be.
	Compacted []string
}

// Broker is a running embedded broker.
type Broker struct {
	c    *kfake.Cluster
	addr string
}

// Start starts a one-node cluster.
func Start(cfg Config) (*Broker, error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 3
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(int(cfg.Partitions)),
		kfake.ClusterID("faceharvest-dev"),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
		}),
	}
	if len(cfg.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(cfg.Partitions, cfg.Topics...))
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	bc := map[string]string{}
	if cfg.MaxMessageBytes > 0 {
		bc["message.max.bytes"] = strconv.Itoa(cfg.MaxMessageBytes)
	}
	if cfg.RetentionBytes > 0 {
		bc["log.retention.bytes"] = strconv.FormatInt(cfg.RetentionBytes, 10)
	}
	if len(bc) > 0 {
		opts = append(opts, kfake.BrokerConfigs(bc))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded broker on %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) == 0 {
		c.Close()
		return nil, fmt.Errorf("embedded broker has no listener")
	}
	b := &Broker{c: c, addr: addrs[0]}
	if err := b.configureTopics(cfg); err != nil {
		c.Close()
		return nil, err
	}
	return b, nil
}

// configureTopics sets the topic-level settings a production cluster would
// have (deploy/k8s/topics): max.message.bytes on every created topic,
// cleanup.policy=compact on the compacted ones. The components check them
// at start.
func (b *Broker) configureTopics(cfg Config) error {
	var res []kafka.IncrementalAlterConfigsRequestResource
	for _, t := range cfg.Topics {
		var cs []kafka.IncrementalAlterConfigsRequestConfig
		if cfg.MaxMessageBytes > 0 {
			cs = append(cs, kafka.IncrementalAlterConfigsRequestConfig{Name: "max.message.bytes", Value: strconv.Itoa(cfg.MaxMessageBytes), ConfigOperation: kafka.ConfigOperationSet})
		}
		if slices.Contains(cfg.Compacted, t) {
			cs = append(cs, kafka.IncrementalAlterConfigsRequestConfig{Name: "cleanup.policy", Value: "compact", ConfigOperation: kafka.ConfigOperationSet})
		}
		if len(cs) > 0 {
			res = append(res, kafka.IncrementalAlterConfigsRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: t, Configs: cs})
		}
	}
	if len(res) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := (&kafka.Client{Addr: kafka.TCP(b.addr)}).IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: res})
	if err != nil {
		return fmt.Errorf("topic settings: %w", err)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return fmt.Errorf("topic settings of %s: %w", r.ResourceName, r.Error)
		}
	}
	return nil
}

// Addr returns the broker's host:port.
func (b *Broker) Addr() string { return b.addr }

// Port returns the broker's port (to restart it on the same one).
func (b *Broker) Port() int {
	_, p, _ := net.SplitHostPort(b.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// ApplyRetention drops old segments beyond the configured retention now
// (kfake does not do it on its own).
func (b *Broker) ApplyRetention() { b.c.ApplyRetention() }

// Close stops the broker, flushing its data directory.
func (b *Broker) Close() { b.c.Close() }
