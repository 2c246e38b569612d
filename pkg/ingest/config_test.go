package ingest

import (
	"strings"
	"testing"
	"time"
)

// TestConfigValidate: DefaultConfig with the required secrets is valid;
// every limit and duration that is not positive is refused naming its
// flag, not replaced by a default; a publish wait that a publish can never
// reach is refused.
func TestConfigValidate(t *testing.T) {
	if err := testConfig().Validate(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	for flag, mutate := range map[string]func(*Config){
		"--max-inflight":        func(c *Config) { c.MaxInFlight = 0 },
		"--max-callback-bytes":  func(c *Config) { c.MaxCallbackBytes = -1 },
		"--max-connections":     func(c *Config) { c.MaxConnections = 0 },
		"--issue-rate":          func(c *Config) { c.IssueRate = 0 },
		"--publish-timeout":     func(c *Config) { c.PublishTimeout = 0 },
		"--idle-timeout":        func(c *Config) { c.IdleTimeout = 0 },
		"--read-header-timeout": func(c *Config) { c.ReadHeaderTimeout = -time.Second },
		"--max-publish-wait":    func(c *Config) { c.MaxPublishWait = c.PublishTimeout },
	} {
		c := testConfig()
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s: %v, want a refusal naming it", flag, err)
		}
		if _, err := New(c, &memPublisher{}); err == nil {
			t.Errorf("%s: New accepted what Validate refuses", flag)
		}
	}
}
