package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
)

// CreateTopic creates a topic with its partitions and settings and says
// ErrTopicExists for one that exists; DeleteTopic deletes it with its
// messages, so that it can be created again empty.
func TestCreateAndDeleteTopic(t *testing.T) {
	b, err := devkafka.Start(devkafka.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := bus.Plain(b.Addr())
	spec := bus.TopicSpec{Name: "lost", Partitions: 3, Replicas: 1, Configs: map[string]string{"max.message.bytes": "2000000"}}
	if err := bus.CreateTopic(ctx, cl, spec); err != nil {
		t.Fatal(err)
	}
	if err := bus.CreateTopic(ctx, cl, spec); !errors.Is(err, bus.ErrTopicExists) {
		t.Fatalf("creating it again: %v, want ErrTopicExists", err)
	}
	if err := bus.CreateTopic(ctx, cl, bus.TopicSpec{Name: "none", Replicas: 1}); err == nil {
		t.Fatal("a topic without partitions was created")
	}
	if n, err := bus.PartitionCount(ctx, cl, "lost"); err != nil || n != 3 {
		t.Fatalf("partitions %d, %v", n, err)
	}
	if set, err := bus.TopicSettings(ctx, cl, "lost", "max.message.bytes"); err != nil || set["max.message.bytes"] != "2000000" {
		t.Fatalf("settings %v, %v", set, err)
	}
	w := bus.NewWriter(bus.WriterConfig{Cluster: cl, Topic: "lost", ByPartition: true})
	defer w.Close()
	if err := w.WriteMessages(ctx, contract.Message{Key: []byte("k"), Value: []byte("v"), Partition: 0}); err != nil {
		t.Fatal(err)
	}
	if _, end, err := bus.PartitionBounds(ctx, cl, "lost", 0); err != nil || end != 1 {
		t.Fatalf("partition 0 ends at %d (%v) after one message", end, err)
	}
	if err := bus.DeleteTopic(ctx, cl, "lost"); err != nil {
		t.Fatal(err)
	}
	// The broker may still be deleting it: created again within a bound.
	deadline := time.Now().Add(time.Minute)
	for err := bus.CreateTopic(ctx, cl, spec); err != nil; err = bus.CreateTopic(ctx, cl, spec) {
		if !errors.Is(err, bus.ErrTopicExists) || time.Now().After(deadline) {
			t.Fatalf("creating it after the deletion: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, end, err := bus.PartitionBounds(ctx, cl, "lost", 0); err != nil || end != 0 {
		t.Fatalf("partition 0 of the topic created again ends at %d (%v), want empty", end, err)
	}
}
