// Package devkafka runs an embedded Kafka-protocol broker (kfake) on
// loopback for development, tests and demos. It speaks the real wire
// protocol over TCP, so the components use it exactly as they would a
// production cluster; with a data directory it keeps its data across
// restarts.
package devkafka

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
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
	// SegmentBytes is log.segment.bytes (100 MiB when 0). Retention drops
	// whole segments only, and in memory the broker grows a segment by
	// doubling and copying it: small segments keep a long in-memory run flat.
	SegmentBytes int64
	// Compacted lists topics (of Topics) created with cleanup.policy=compact,
	// as the harvester's state topic must be.
	Compacted []string
	// TLS, when set, makes the broker accept only TLS connections.
	TLS *tls.Config
	// Users, when any, make the broker accept only SASL-authenticated
	// clients, as a secured production cluster does.
	Users []User
}

// User is a SASL identity the broker accepts.
type User struct {
	Mechanism      string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	Name, Password string
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
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	if cfg.TLS != nil {
		opts = append(opts, kfake.TLS(cfg.TLS))
	}
	if len(cfg.Users) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for _, u := range cfg.Users {
			opts = append(opts, kfake.Superuser(u.Mechanism, u.Name, u.Password))
		}
	}
	bc := map[string]string{}
	if cfg.MaxMessageBytes > 0 {
		bc["message.max.bytes"] = strconv.Itoa(cfg.MaxMessageBytes)
	}
	if cfg.RetentionBytes > 0 {
		bc["log.retention.bytes"] = strconv.FormatInt(cfg.RetentionBytes, 10)
	}
	if cfg.SegmentBytes > 0 {
		bc["log.segment.bytes"] = strconv.FormatInt(cfg.SegmentBytes, 10)
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
	if err := b.createTopics(cfg); err != nil {
		c.Close()
		return nil, err
	}
	return b, nil
}

// createTopics creates the configured topics with the topic-level settings a
// production cluster would have (deploy/k8s/topics): max.message.bytes on
// each, cleanup.policy=compact on the compacted ones. The components check
// them at start. A topic kept in the data directory from an earlier start
// keeps its settings.
func (b *Broker) createTopics(cfg Config) error {
	for _, t := range cfg.Topics {
		settings := map[string]string{}
		if cfg.MaxMessageBytes > 0 {
			settings["max.message.bytes"] = strconv.Itoa(cfg.MaxMessageBytes)
		}
		if slices.Contains(cfg.Compacted, t) {
			settings["cleanup.policy"] = "compact"
		}
		if err := b.c.CreateTopic(t, cfg.Partitions, settings); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("topic %s: %w", t, err)
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
