package archiver

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// testRunConfig is DefaultRunConfig on brokers for group, with the tests'
// topics and short group timeouts.
func testRunConfig(brokers []string, group string) RunConfig {
	rc := DefaultRunConfig()
	rc.Kafka, rc.GroupID, rc.RawTopic, rc.ResultsTopic, rc.DLQTopic = bus.Plain(brokers...), group, rawTopic, resultsTopic, dlqTopic
	rc.SessionTimeout, rc.RebalanceTimeout = 6*time.Second, 6*time.Second
	return rc
}

func TestDefaultConfigsAreValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
	if err := DefaultRunConfig().Validate(); err != nil {
		t.Errorf("DefaultRunConfig: %v", err)
	}
}

// A zero setting is refused by the constructors with an error naming it;
// it never silently becomes a default.
func TestZeroSettingsAreRefused(t *testing.T) {
	zeroEach(t, DefaultConfig(), "DefaultConfig()", func(c Config) error {
		c.Store = objstore.NewMemory()
		_, err := New(c)
		return err
	})
	a := newTest(t, objstore.NewMemory(), nil)
	zeroEach(t, DefaultRunConfig(), "DefaultRunConfig()", func(c RunConfig) error {
		// Validate comes before any broker is asked: none is needed here.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := NewRunner(ctx, c, a)
		return err
	})
	c := DefaultConfig()
	c.RetryMin, c.RetryMax = time.Second, time.Millisecond
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "RetryMax 1ms is below RetryMin 1s") {
		t.Errorf("RetryMax below RetryMin: %v", err)
	}
	rc := DefaultRunConfig()
	rc.DLQPayload = "elsewhere"
	if err := rc.Validate(); err == nil || !strings.Contains(err.Error(), "DLQPayload") {
		t.Errorf("DLQPayload elsewhere: %v", err)
	}
}

// zeroEach sets each setting def gives (a non-zero field other than a
// function) to zero in turn and expects construct to refuse it by name.
func zeroEach[C any](t *testing.T, def C, defaults string, construct func(C) error) {
	t.Helper()
	dv := reflect.ValueOf(def)
	n := 0
	for i := range dv.NumField() {
		f := dv.Type().Field(i)
		if dv.Field(i).IsZero() || f.Type.Kind() == reflect.Func {
			continue
		}
		n++
		c := def
		reflect.ValueOf(&c).Elem().Field(i).SetZero()
		err := construct(c)
		if err == nil {
			t.Errorf("%T with %s zero was accepted", def, f.Name)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, f.Name) || !strings.Contains(msg, defaults) {
			t.Errorf("%T with %s zero: error %q does not name the setting and %s", def, f.Name, msg, defaults)
		}
	}
	if n < 5 {
		t.Errorf("%T: only %d settings checked", def, n)
	}
}
