package ingest

import (
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

// trickleBody gives a few bytes, then fails as a connection that went
// silent until its read deadline would.
type trickleBody struct{ r io.Reader }

func (b *trickleBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, errors.New("i/o timeout")
	}
	return n, err
}

func (b *trickleBody) Close() error { return nil }

// TestAnnouncedLengthIsNotAllocated: a request that announces 1 MiB and
// sends a few bytes must not cost 1 MiB. The buffer grows with the bytes
// that arrive, so a stranger's announcement buys nothing.
func TestAnnouncedLengthIsNotAllocated(t *testing.T) {
	const announced = 1 << 20
	read := func() *reqError {
		r := &http.Request{ContentLength: announced, Body: &trickleBody{strings.NewReader("data=abc&sign=")}}
		_, e := readBody(r, 2*announced)
		return e
	}
	if e := read(); e == nil || e.status != http.StatusBadRequest {
		t.Fatalf("a truncated body: %+v, want 400", e)
	}
	const runs = 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		_ = read()
	}
	runtime.ReadMemStats(&after)
	perCall := (after.TotalAlloc - before.TotalAlloc) / runs
	if perCall > 64<<10 {
		t.Fatalf("a request announcing %d bytes and sending 14 allocated %d bytes", announced, perCall)
	}
}

// TestBodyGrowsToWhatArrives: bodies of every size up to the limit are read
// whole, whatever Content-Length said, and refused beyond it.
func TestBodyGrowsToWhatArrives(t *testing.T) {
	for _, n := range []int{1, 100, 4 << 10, 16<<10 + 1, 100 << 10, 1 << 20} {
		for _, announce := range []bool{true, false} {
			body := strings.Repeat("x", n)
			r := &http.Request{Body: io.NopCloser(strings.NewReader(body)), ContentLength: -1}
			if announce {
				r.ContentLength = int64(n)
			}
			b, e := readBody(r, 1<<20)
			if e != nil || string(b) != body {
				t.Fatalf("%d bytes (announced %v): %d read, %+v", n, announce, len(b), e)
			}
			bodies.put(b)
		}
	}
	r := &http.Request{Body: http.MaxBytesReader(nil, io.NopCloser(strings.NewReader(strings.Repeat("x", 1001))), 1000), ContentLength: -1}
	if _, e := readBody(r, 1000); e == nil || e.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the limit: %+v", e)
	}
}
