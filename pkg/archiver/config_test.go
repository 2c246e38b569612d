package archiver

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
)

// A RunConfig's zero fields take DefaultRunConfig's values, the ones the
// flags show: the runner keeps no second copy of a default.
func TestNewRunnerTakesDefaultRunConfig(t *testing.T) {
	brokers, store, _ := holdWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := NewRunner(ctx, RunConfig{Kafka: bus.Plain(brokers...), GroupID: "defaults", RawTopic: rawTopic, ResultsTopic: resultsTopic, DLQTopic: dlqTopic},
		newTest(t, store, nil))
	if err != nil {
		t.Fatal(err)
	}
	def := reflect.ValueOf(DefaultRunConfig())
	got := reflect.ValueOf(r.cfg)
	for i := range def.NumField() {
		name := def.Type().Field(i).Name
		if !def.Field(i).IsZero() && !reflect.DeepEqual(got.Field(i).Interface(), def.Field(i).Interface()) {
			t.Errorf("a zero %s became %v; DefaultRunConfig says %v", name, got.Field(i), def.Field(i))
		}
	}
}
