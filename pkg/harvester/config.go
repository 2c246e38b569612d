package harvester

import (
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/schedule"
)

// DefaultConcurrency is each vendor's calls in flight in DefaultConfig.
const DefaultConcurrency = 8

// DefaultInlineMax is EngineConfig.InlineMax's default: answers below it
// travel inline on the raw topic as well as by reference.
const DefaultInlineMax = 64 << 10

// intentMargin is how much older than a call's timeout an unsettled intent
// must be before restore resolves it: room for storing and publishing the answer.
const intentMargin = 30 * time.Second

// DefaultConfig returns the engine settings' defaults (no callers, stores
// or publishers): the flags take theirs from it, and whoever builds an
// engine starts from it (NewEngine fills no zero field; Validate refuses
// what cannot work).
func DefaultConfig() EngineConfig {
	const callTimeout = time.Minute
	return EngineConfig{
		Policy: schedule.Defaults(),
		Limits: map[contract.Vendor]VendorLimits{
			contract.Megvii: {Concurrency: DefaultConcurrency},
			contract.Baidu:  {Concurrency: DefaultConcurrency},
		},
		AccountWait:     time.Minute,
		CallTimeout:     callTimeout,
		IntentGrace:     callTimeout + intentMargin,
		Source:          "/harvester",
		ClosedRetention: 8 * 24 * time.Hour,
		MaxUnregistered: DefaultMaxUnregistered,
		InlineMax:       DefaultInlineMax,
	}
}
