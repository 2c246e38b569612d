package harvester

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// A Config's zero fields take DefaultRunConfig's values, the ones the flags
// show: New keeps no second copy of a default. (The engine's settings are
// NewEngine's, from DefaultConfig.)
func TestNewTakesDefaultRunConfig(t *testing.T) {
	b, err := devkafka.Start(devkafka.Config{Partitions: 2, Topics: []string{evTopic, stTopic, rawTopic, dlqTopic}, MaxMessageBytes: 64 << 20, Compacted: []string{stTopic}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := New(ctx, Config{Kafka: bus.Plain(b.Addr()), GroupID: "defaults", EventsTopic: evTopic, StateTopic: stTopic, RawTopic: rawTopic, DLQTopic: dlqTopic,
		Engine: engineConfig(func(c *EngineConfig) { c.Answers = objstore.NewMemory() })})
	if err != nil {
		t.Fatal(err)
	}
	def := reflect.ValueOf(DefaultRunConfig())
	got := reflect.ValueOf(h.cfg)
	checked := 0
	for i := range def.NumField() {
		name := def.Type().Field(i).Name
		if name == "Engine" || def.Field(i).IsZero() {
			continue
		}
		checked++
		if !reflect.DeepEqual(got.Field(i).Interface(), def.Field(i).Interface()) {
			t.Errorf("a zero %s became %v; DefaultRunConfig says %v", name, got.Field(i), def.Field(i))
		}
	}
	if checked < 4 {
		t.Fatalf("only %d defaults checked", checked)
	}
}
