package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for _, c := range []struct {
		try  int
		want time.Duration
	}{{0, 100 * time.Millisecond}, {1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {6, 3200 * time.Millisecond},
		{7, 5 * time.Second}, {64, 5 * time.Second}, {1 << 30, 5 * time.Second}} {
		if got := b.Delay(c.try); got != c.want {
			t.Errorf("Delay(%d) = %v, want %v", c.try, got, c.want)
		}
	}
	b.Jitter = true
	for try := 1; try < 10; try++ {
		full := Backoff{Min: b.Min, Max: b.Max}.Delay(try)
		for range 100 {
			if d := b.Delay(try); d < full/2 || d > full {
				t.Fatalf("jittered Delay(%d) = %v, want within [%v, %v]", try, d, full/2, full)
			}
		}
	}
}

// waits records the waits Do asked for, without sleeping.
type waits []time.Duration

func (w *waits) wait(ctx context.Context, d time.Duration) error {
	*w = append(*w, d)
	return ctx.Err()
}

func TestDoRetriesUntilSuccess(t *testing.T) {
	var w waits
	var failures []int
	p := Policy{Backoff: Backoff{Min: time.Second, Max: 4 * time.Second}, Wait: w.wait,
		OnFailure: func(try int, err error, next time.Duration) { failures = append(failures, try) }}
	calls := 0
	err := Do(context.Background(), p, func(try int) error {
		calls++
		if try != calls {
			t.Fatalf("try %d on call %d", try, calls)
		}
		if try < 5 {
			return errors.New("down")
		}
		return nil
	})
	if err != nil || calls != 5 {
		t.Fatalf("Do = %v after %d calls, want nil after 5", err, calls)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
	if len(w) != len(want) || len(failures) != 4 {
		t.Fatalf("waits %v, failures %v", w, failures)
	}
	for i := range want {
		if w[i] != want[i] {
			t.Fatalf("waits %v, want %v", w, want)
		}
	}
}

func TestDoStopsOnPermanentAndOnCancel(t *testing.T) {
	var w waits
	bad := errors.New("bad input")
	calls := 0
	err := Do(context.Background(), Policy{Backoff: Backoff{Min: time.Second, Max: time.Second}, Wait: w.wait}, func(int) error {
		calls++
		return Permanent(bad)
	})
	if err != bad || calls != 1 || len(w) != 0 {
		t.Fatalf("permanent: %v after %d calls and %d waits, want the error itself at once", err, calls, len(w))
	}
	ctx, cancel := context.WithCancel(context.Background())
	down := errors.New("down")
	calls = 0
	err = Do(ctx, Policy{Backoff: Backoff{Min: time.Second, Max: time.Second}, Wait: w.wait}, func(try int) error {
		calls++
		if try == 3 {
			cancel()
		}
		return down
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, down) || calls != 3 {
		t.Fatalf("cancelled: %v after %d calls, want context.Canceled joined with the last error after 3", err, calls)
	}
	if Permanent(nil) != nil {
		t.Fatal("Permanent(nil) is not nil")
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on an ended context: %v", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
