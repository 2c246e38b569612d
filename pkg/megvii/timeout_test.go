package megvii

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/config"
)

// deadlineRecorder answers nothing: it records the deadline each request
// would have been cut at.
type deadlineRecorder struct{ deadlines []time.Duration }

func (d *deadlineRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	dl, ok := r.Context().Deadline()
	left := time.Duration(-1)
	if ok {
		left = time.Until(dl)
	}
	d.deadlines = append(d.deadlines, left)
	return nil, errors.New("recorded")
}

// One timeout per call, the caller's: a get_result answer with every image
// can take longer than 30 s to arrive, and one cut short after the vendor
// served it spends the one-call budget. The client's own default client
// must not cut a call before the harvester's --call-timeout (1 min) does.
func TestOneTimeoutPerCall(t *testing.T) {
	c, err := New(Config{BaseURL: "http://127.0.0.1:1", APIKey: config.NewSecret("k"), APISecret: config.NewSecret("s")})
	if err != nil {
		t.Fatal(err)
	}
	rec := &deadlineRecorder{}
	c.httpc.Transport = rec
	for _, c0 := range []struct {
		name    string
		timeout time.Duration // of the caller's context; 0: none
		min     time.Duration
		max     time.Duration
	}{
		{"the caller's deadline", 90 * time.Second, 89 * time.Second, 90 * time.Second},
		{"a shorter caller deadline", 5 * time.Second, 4 * time.Second, 5 * time.Second},
		{"no caller deadline: the client's bound", 0, 59 * time.Second, time.Minute},
	} {
		ctx := context.Background()
		if c0.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c0.timeout)
			defer cancel()
		}
		rec.deadlines = nil
		_, _ = c.GetResult(ctx, "b1", GetResultOptions{})
		if len(rec.deadlines) != 1 || rec.deadlines[0] < c0.min || rec.deadlines[0] > c0.max {
			t.Errorf("%s: the request would be cut after %v, want between %v and %v", c0.name, rec.deadlines, c0.min, c0.max)
		}
	}
}
