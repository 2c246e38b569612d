package archiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/retry"
)

// retryBackoff is the back-off of every store, spool, download and
// publish retry: doubling from RetryMin to RetryMax, jittered.
func (a *Archiver) retryBackoff() retry.Backoff {
	return retry.Backoff{Min: a.cfg.RetryMin, Max: a.cfg.RetryMax, Jitter: true}
}

// retryPolicy is retryBackoff with onFailure counting and logging.
func (a *Archiver) retryPolicy(onFailure func(try int, err error)) retry.Policy {
	return retry.Policy{Backoff: a.retryBackoff(), OnFailure: func(try int, err error, _ time.Duration) { onFailure(try, err) }}
}

// storeFailed counts a failed store operation, marks the store down and
// logs the first and every tenth try (kind "" logs nothing).
func (a *Archiver) storeFailed(kind string, down bool) func(try int, err error) {
	return func(try int, err error) {
		a.m.storeRetry.Inc()
		if down {
			a.m.storeDown.Set(1)
		}
		if kind != "" && (try == 1 || try%10 == 0) {
			a.log.Warn("store operation failed; retrying", "kind", kind, "try", try, "error", err.Error())
		}
	}
}

// unlessDone returns err for another try, or ctx's error, final, once ctx
// ended.
func unlessDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return retry.Permanent(ctx.Err())
	}
	return err
}

// putOnce stores an object unless its key exists, retrying store failures
// until ctx ends: an outage delays archiving, it never skips anything.
// putOnceAttrs also returns the existing object's attributes when there was
// one.
func (a *Archiver) putOnce(ctx context.Context, key, kind string, open func() (io.Reader, int64, error), ct string, meta map[string]string) error {
	_, _, err := a.putOnceAttrs(ctx, key, kind, open, ct, meta)
	return err
}

func (a *Archiver) putOnceAttrs(ctx context.Context, key, kind string, open func() (io.Reader, int64, error), ct string, meta map[string]string) (objstore.Attrs, bool, error) {
	return a.putOnceWith(ctx, key, kind, open, ct, meta, a.storeFailed(kind, true))
}

// putOnceWith is putOnceAttrs with onFailure called on each failed try.
func (a *Archiver) putOnceWith(ctx context.Context, key, kind string, open func() (io.Reader, int64, error), ct string, meta map[string]string, onFailure func(try int, err error)) (objstore.Attrs, bool, error) {
	var opts []objstore.PutOption
	if sum := meta["sha256"]; sum != "" {
		// The store checks the content address itself and refuses a body
		// that differs from it (retried like any store failure).
		opts = append(opts, objstore.WithSHA256(sum))
	}
	var attrs objstore.Attrs
	var existed bool
	err := retry.Do(ctx, a.retryPolicy(onFailure), func(int) error {
		body, n, err := open()
		if err != nil {
			return retry.Permanent(err)
		}
		// One conditional write: the store refuses to replace what exists.
		err = a.cfg.Store.Create(ctx, key, body, n, ct, meta, opts...)
		if err == nil {
			a.m.objects.WithLabelValues(kind).Inc()
			a.m.bytes.WithLabelValues(kind).Add(float64(n))
			a.m.storeDown.Set(0)
			return nil
		}
		if errors.Is(err, objstore.ErrExists) {
			if attrs, err = a.cfg.Store.Attributes(ctx, key); err == nil {
				a.m.existing.WithLabelValues(kind).Inc()
				a.m.storeDown.Set(0)
				existed = true
				return nil
			}
		}
		return unlessDone(ctx, err)
	})
	if err != nil {
		return objstore.Attrs{}, false, err
	}
	return attrs, existed, nil
}

// getRetry reads an object, retrying store failures until ctx ends; a
// missing object is ErrNotFound at once.
func (a *Archiver) getRetry(ctx context.Context, key string, limit int64) ([]byte, error) {
	var b []byte
	err := retry.Do(ctx, a.retryPolicy(a.storeFailed("", true)), func(int) error {
		rc, err := a.cfg.Store.Get(ctx, key)
		if err == nil {
			b, err = io.ReadAll(io.LimitReader(rc, limit))
			rc.Close()
			if err == nil {
				a.m.storeDown.Set(0)
				return nil
			}
		}
		if errors.Is(err, objstore.ErrNotFound) {
			return retry.Permanent(err)
		}
		return unlessDone(ctx, err)
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// maxAnswerBytes bounds a vendor answer read by reference: Megvii's with
// every image is about 20 MiB.
const maxAnswerBytes = 256 << 20

// loadAnswer gives r the bytes of its answer: read from the store when the
// message carried only their reference, and checked against the reference
// (size and SHA-256) wherever they came from; a message without a
// reference (written before the claim check) is taken as it is. bad says
// why the bytes cannot be used (dead-lettered: another try reads the same);
// err is ctx's end, since a missing object is waited for like a store
// outage: the harvester stored it before it published its reference, so it
// is missing only from a store that is not the harvester's (a wrong bucket)
// or not yet restored, and archiving without it would lose the answer.
func (a *Archiver) loadAnswer(ctx context.Context, r *contract.Response) (bad, err error) {
	if r.Ref == nil {
		a.m.rawAnswers.WithLabelValues("inline").Inc()
		return nil, nil
	}
	if !r.ByReference() {
		if bad := r.Ref.Check(r.Body); bad != nil {
			a.m.rawAnswerErrors.WithLabelValues("mismatch").Inc()
			return bad, nil
		}
		a.m.rawAnswers.WithLabelValues("inline").Inc()
		return nil, nil
	}
	if r.Ref.Size > maxAnswerBytes {
		a.m.rawAnswerErrors.WithLabelValues("too_large").Inc()
		return fmt.Errorf("answer %s of %d bytes is above the %d read by reference", r.Ref.Key, r.Ref.Size, maxAnswerBytes), nil
	}
	var b []byte
	err = retry.Do(ctx, a.retryPolicy(func(try int, err error) {
		if errors.Is(err, objstore.ErrNotFound) {
			a.m.rawAnswerErrors.WithLabelValues("missing").Inc()
			if try == 1 || try%10 == 0 {
				a.log.Error("a raw answer's reference names no object in the store (is this the harvester's bucket?); retrying", "key", r.Ref.Key, "try", try)
			}
			return
		}
		a.storeFailed("raw_answer", true)(try, err)
	}), func(int) error {
		rc, err := a.cfg.Store.Get(ctx, r.Ref.Key)
		if err == nil {
			b, err = io.ReadAll(io.LimitReader(rc, r.Ref.Size+1))
			rc.Close()
			if err == nil {
				a.m.storeDown.Set(0)
				return nil
			}
		}
		return unlessDone(ctx, err)
	})
	if err != nil {
		return nil, err
	}
	if bad := r.Ref.Check(b); bad != nil {
		a.m.rawAnswerErrors.WithLabelValues("mismatch").Inc()
		return bad, nil
	}
	a.m.rawAnswers.WithLabelValues("store").Inc()
	r.Body = b
	return nil, nil
}
