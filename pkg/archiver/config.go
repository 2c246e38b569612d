package archiver

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
)

// DefaultConfig returns the archiver's settings (no store): the flags take
// theirs from it, and a caller starts from it and changes what it needs. New
// takes a Config as it is: a zero setting is refused (Validate), never
// replaced by a default. The spool directory is the system's temporary
// directory.
func DefaultConfig() Config {
	return Config{
		SpoolDir:        os.TempDir(),
		MaxImageBytes:   20 << 20,
		MaxMediaBytes:   1 << 30,
		DownloadTries:   3,
		DownloadTimeout: 10 * time.Minute,
		MediaParallel:   4,
		RetryMin:        200 * time.Millisecond,
		RetryMax:        10 * time.Second,
		Source:          "/archiver",
	}
}

// Validate says what is wrong with the settings, every fault at once; nil
// when they are usable. The store and the other collaborators (HTTP, Now,
// Metrics, Logger) are not settings: New checks the store, and a nil
// collaborator means none given (the strictest media client, the system
// clock, unregistered metrics, no logs).
func (c Config) Validate() error {
	var errs []SettingError
	if c.SpoolDir == "" {
		errs = append(errs, SettingError{"SpoolDir", "is empty: name a directory (DefaultConfig's is the system's temporary directory)"})
	}
	errs = positive(errs, "MaxImageBytes", c.MaxImageBytes)
	errs = positive(errs, "MaxMediaBytes", c.MaxMediaBytes)
	errs = positive(errs, "DownloadTries", c.DownloadTries)
	errs = positive(errs, "DownloadTimeout", c.DownloadTimeout)
	errs = positive(errs, "MediaParallel", c.MediaParallel)
	errs = positive(errs, "RetryMin", c.RetryMin)
	if c.RetryMax < c.RetryMin {
		errs = append(errs, SettingError{"RetryMax", fmt.Sprintf("%v is below RetryMin %v", c.RetryMax, c.RetryMin)})
	}
	if c.Source == "" {
		errs = append(errs, SettingError{"Source", "is empty: records need a ce_source"})
	}
	return configError("archiver", "DefaultConfig", errs)
}

// DefaultRunConfig returns the consumer's settings (no cluster): the flags
// take theirs from it, and a caller starts from it. NewRunner takes a
// RunConfig as it is: a zero setting is refused (Validate). The commit
// interval and the group's timeouts are pkg/bus's.
func DefaultRunConfig() RunConfig {
	group, part := bus.DefaultGroupConfig(), bus.DefaultPartitionConfig()
	return RunConfig{
		GroupID:          "faceharvest-archiver",
		RawTopic:         contract.DefaultRawTopic,
		ResultsTopic:     contract.DefaultResultsTopic,
		DLQTopic:         contract.DefaultDLQTopic,
		Workers:          8,
		CommitInterval:   part.CommitInterval,
		HoldLimit:        2 * time.Minute,
		DrainTimeout:     20 * time.Second,
		SessionTimeout:   group.SessionTimeout,
		RebalanceTimeout: group.RebalanceTimeout,
		DLQPayload:       bus.PayloadInline,
	}
}

// Validate says what is wrong with the settings, every fault at once; nil
// when they are usable. The cluster is not a setting: NewRunner checks it
// and the topics against the brokers. A nil Logger means no logs.
func (c RunConfig) Validate() error {
	var errs []SettingError
	for _, s := range []struct{ name, v string }{{"GroupID", c.GroupID}, {"RawTopic", c.RawTopic}, {"ResultsTopic", c.ResultsTopic}, {"DLQTopic", c.DLQTopic}} {
		if s.v == "" {
			errs = append(errs, SettingError{s.name, "is empty"})
		}
	}
	errs = positive(errs, "Workers", c.Workers)
	errs = positive(errs, "CommitInterval", c.CommitInterval)
	errs = positive(errs, "HoldLimit", c.HoldLimit)
	errs = positive(errs, "DrainTimeout", c.DrainTimeout)
	errs = positive(errs, "SessionTimeout", c.SessionTimeout)
	errs = positive(errs, "RebalanceTimeout", c.RebalanceTimeout)
	if _, err := bus.ParseDeadLetterPayloadMode(string(c.DLQPayload)); err != nil {
		errs = append(errs, SettingError{"DLQPayload", err.Error()})
	}
	return configError("archiver runner", "DefaultRunConfig", errs)
}

// positive adds to errs that the setting name is not positive.
func positive[T int | int64 | time.Duration](errs []SettingError, name string, v T) []SettingError {
	if v <= 0 {
		return append(errs, SettingError{name, fmt.Sprintf("is %v: it must be positive", v)})
	}
	return errs
}

// SettingError is a setting Validate refuses: its field and what is wrong.
type SettingError struct {
	Field, Problem string
}

func (e SettingError) Error() string { return e.Field + " " + e.Problem }

// ConfigError is every setting of a config that Validate refuses.
type ConfigError struct {
	// Config names what is configured; Defaults the function whose
	// settings are valid.
	Config, Defaults string
	Settings         []SettingError
}

func (e *ConfigError) Error() string {
	msgs := make([]string, len(e.Settings))
	for i, s := range e.Settings {
		msgs[i] = s.Error()
	}
	return fmt.Sprintf("%s: invalid settings (start from %s()): %s", e.Config, e.Defaults, strings.Join(msgs, "; "))
}

// configError is nil without faults.
func configError(what, defaults string, errs []SettingError) error {
	if len(errs) == 0 {
		return nil
	}
	return &ConfigError{Config: what, Defaults: defaults, Settings: errs}
}
