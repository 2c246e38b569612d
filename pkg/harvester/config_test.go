package harvester

import (
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// The engine's settings: DefaultConfig is valid; a zero or contradictory
// setting is refused, never replaced by a default.
func TestEngineConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	for _, c := range []struct {
		name string
		set  func(*EngineConfig)
		want string
	}{
		{"zero", func(c *EngineConfig) { *c = EngineConfig{} }, "retention"},
		{"no call timeout", func(c *EngineConfig) { c.CallTimeout = 0 }, "call timeout"},
		{"grace under the call timeout", func(c *EngineConfig) { c.IntentGrace = c.CallTimeout }, "intent grace"},
		{"no inline maximum", func(c *EngineConfig) { c.InlineMax = 0 }, "inline"},
		{"negative unregistered", func(c *EngineConfig) { c.MaxUnregistered = -1 }, "unregistered"},
		{"a caller without limits", func(c *EngineConfig) {
			c.Callers = map[contract.Vendor]Caller{contract.Megvii: &fakeCaller{}}
			c.Limits = nil
		}, "concurrency"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := engineConfig(c.set).Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one naming %q", err, c.want)
			}
		})
	}
	// NewEngine takes what it is given: no zero field becomes a default.
	e := NewEngine(engineConfig(func(c *EngineConfig) { c.MaxUnregistered, c.AccountWait = 0, 3*time.Second }))
	if e.maxUnreg != 0 || e.cfg.AccountWait != 3*time.Second {
		t.Fatalf("max unregistered %d, account wait %s", e.maxUnreg, e.cfg.AccountWait)
	}
}
