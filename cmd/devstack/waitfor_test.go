package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWaitFor(t *testing.T) {
	notYet := errors.New("not yet")
	for _, tc := range []struct {
		name    string
		okAt    int // the try that succeeds; 0 never
		cancel  bool
		want    string // in the error; "" for none
		minTry  int
		within  time.Duration
		between time.Duration
	}{
		{name: "at once", okAt: 1, within: time.Minute, between: time.Millisecond, minTry: 1},
		{name: "third try", okAt: 3, within: time.Minute, between: time.Millisecond, minTry: 3},
		{name: "never", within: 50 * time.Millisecond, between: 5 * time.Millisecond, want: "not within 50ms: not yet", minTry: 2},
		{name: "cancelled", cancel: true, within: time.Minute, between: time.Millisecond, want: context.Canceled.Error(), minTry: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tries := 0
			err := waitFor(ctx, tc.within, tc.between, func(context.Context) error {
				tries++
				if tc.cancel {
					cancel()
				}
				if tries == tc.okAt {
					return nil
				}
				return notYet
			})
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if tc.cancel && !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v is not the context's", err)
			}
			if tries < tc.minTry || (tc.okAt > 0 && tries != tc.okAt) {
				t.Fatalf("%d tries", tries)
			}
		})
	}
}
