package ingest

import "time"

// DefaultConfig returns every setting's default: the flags take theirs
// from it, and New fills a zero field from it.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:      1 << 20,
		MaxCallbackBytes:  64 << 10,
		MaxConnections:    512,
		IdleTimeout:       15 * time.Second,
		PublishTimeout:    5 * time.Second,
		RetryAfter:        5 * time.Second,
		MaxPublishWait:    2 * time.Second,
		MaxTokenAge:       7 * 24 * time.Hour,
		MaxClockSkew:      5 * time.Minute,
		MaxLandingAge:     24 * time.Hour,
		MaxBatch:          1000,
		MaxInFlight:       128,
		MaxHeaderBytes:    16 << 10,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		MaxIssuing:        16,
		IssueRate:         20,
		FailedTokenBurst:  10,
		FailedTokenEvery:  6 * time.Second,
		IssueBurst:        50,
		VendorTimeout:     15 * time.Second,
	}
}
