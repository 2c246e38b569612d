// Package ops serves what operators and Kubernetes probe on every process:
// /metrics from the process's one registry, /healthz (the process runs) and
// /readyz (its dependencies answer, with a tolerance: see Readiness).
package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/faceharvest/faceharvest/pkg/buildinfo"
)

// Check reports whether one dependency is usable.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// NewRegistry returns a registry with the Go and process collectors and
// faceharvest_build_info (1, labelled with the binary's version, revision and
// Go version: what --version prints).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	bi := buildinfo.Read()
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "faceharvest_build_info", Help: "Always 1; the labels name the running build (as --version prints it).",
		ConstLabels: prometheus.Labels{"version": bi.Version, "revision": bi.Revision, "goversion": bi.GoVersion}})
	info.Set(1)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), info)
	return reg
}

// Mux returns a mux serving /metrics, /healthz (the process runs) and
// /readyz (ready's answer; always ready when ready is nil).
func Mux(reg *prometheus.Registry, ready *Readiness) *http.ServeMux {
	if ready == nil {
		ready = NewReadiness(0, nil)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /readyz", ready)
	return mux
}

// ServeActor returns a run.Group actor serving srv on ln; interrupting it shuts
// the server down gracefully (in-flight requests finish, within grace). With
// after set, the shutdown waits until after is closed first: an ops server
// keeps answering while the rest of its process drains. An error serving
// ends the actor, and with it the process.
func ServeActor(srv *http.Server, ln net.Listener, grace time.Duration, after <-chan struct{}) (run func() error, interrupt func(error)) {
	run = func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	interrupt = func(error) {
		if after != nil {
			<-after
		}
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	return run, interrupt
}

// NewServer returns an http.Server with the timeouts every listener of the
// product uses.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute, // media downloads stream for a while
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// NewLogger returns a JSON logger at level (debug, info, warn, error).
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// DelayStop wraps a run group's stopping actor (the signal actor): when it
// ends on its own, drain is called and the actor returns only after delay,
// so the rest of the group (the servers) keeps running meanwhile. Kubernetes
// removes a terminating pod from its Service's endpoints while it delivers
// SIGTERM, and proxies and load balancers learn of it seconds later: a server
// that stops accepting at once refuses requests still routed to it. Being
// interrupted (another actor ended first) cuts the delay short.
func DelayStop(run func() error, interrupt func(error), delay time.Duration, drain func()) (func() error, func(error)) {
	stop := make(chan struct{})
	var once sync.Once
	return func() error {
			err := run()
			select {
			case <-stop:
				return err // interrupted: the group is stopping already
			default:
			}
			drain()
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-stop:
			}
			return err
		}, func(err error) {
			once.Do(func() { close(stop) })
			interrupt(err)
		}
}
