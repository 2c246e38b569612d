package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
)

// A writer puts a key on the partition PartitionOf names, or, by
// partition, where the message says; ReadRange reads a partition back from
// an offset to the end it had; PartitionCount and PartitionBounds agree.
func TestPartitionsAndReadRange(t *testing.T) {
	b, err := devkafka.Start(devkafka.Config{Topics: []string{"events", "state"}, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := bus.Plain(b.Addr())
	n, err := bus.PartitionCount(ctx, cl, "events")
	if err != nil || n != 4 {
		t.Fatalf("partitions %d, %v", n, err)
	}
	if _, err := bus.PartitionCount(ctx, cl, "nope"); err == nil {
		t.Fatal("a missing topic has partitions")
	}

	byKey := bus.NewWriter(bus.WriterConfig{Cluster: cl, Topic: "events"})
	defer byKey.Close()
	keys := map[int][]string{}
	for i := range 20 {
		k := fmt.Sprintf("megvii:%d", i)
		if err := byKey.WriteMessages(ctx, contract.Message{Key: []byte(k), Value: []byte("v"),
			Headers: []contract.Header{{Key: contract.HeaderID, Value: []byte("id-" + k)}}}); err != nil {
			t.Fatal(err)
		}
		p := bus.PartitionOf([]byte(k), n)
		keys[p] = append(keys[p], k)
	}
	for p := range n {
		var got []string
		err := bus.ReadRange(ctx, cl, "events", p, -1, func(m contract.Message) {
			if m.Topic != "events" || m.Partition != p {
				t.Errorf("read %s/%d from partition %d", m.Topic, m.Partition, p)
			}
			if id, _ := m.Header(contract.HeaderID); string(id) != "id-"+string(m.Key) {
				t.Errorf("message %s has ce_id %q", m.Key, id)
			}
			got = append(got, string(m.Key))
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(keys[p]) {
			t.Errorf("partition %d holds %v, PartitionOf says %v", p, got, keys[p])
		}
	}

	byPartition := bus.NewWriter(bus.WriterConfig{Cluster: cl, Topic: "state", ByPartition: true})
	defer byPartition.Close()
	for i := range 3 {
		if err := byPartition.WriteMessages(ctx, contract.Message{Partition: 2, Key: []byte("megvii:1"), Value: []byte{byte('a' + i)}}); err != nil {
			t.Fatal(err)
		}
	}
	first, end, err := bus.PartitionBounds(ctx, cl, "state", 2)
	if err != nil || first != 0 || end != 3 {
		t.Fatalf("bounds %d, %d, %v", first, end, err)
	}
	var vals string
	if err := bus.ReadRange(ctx, cl, "state", 2, 1, func(m contract.Message) { vals += string(m.Value) }); err != nil || vals != "bc" {
		t.Fatalf("from offset 1: %q, %v", vals, err)
	}
	for _, p := range []int{0, 1, 3} {
		if _, end, err := bus.PartitionBounds(ctx, cl, "state", p); err != nil || end != 0 {
			t.Errorf("partition %d ends at %d (%v): a message went by key", p, end, err)
		}
	}
}
