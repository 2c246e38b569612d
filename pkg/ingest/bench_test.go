package ingest

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
)

type discardPublisher struct{}

func (discardPublisher) WriteMessages(context.Context, ...contract.Message) error { return nil }

// BenchmarkMegviiCallbackHandler is the CPU cost of one callback in the
// handler (decode, two-secret signature check, event, envelope) without the
// broker; BenchmarkBareHandler reads the same body and does nothing else.
func BenchmarkMegviiCallbackHandler(b *testing.B) {
	cfg := DefaultConfig()
	cfg.MegviiSecrets, cfg.BearerTokens = []config.Secret{config.NewSecret("old"), config.NewSecret(secretNew)}, []config.Secret{config.NewSecret("t")}
	cfg.Registry, cfg.Logger = prometheus.NewRegistry(), slog.New(slog.DiscardHandler)
	s, _ := New(cfg, discardPublisher{})
	h := s.Handler()
	body := signed(secretNew, docData()).EncodeForm()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", RouteMegviiCallback, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

func BenchmarkBareHandler(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r.Body)
		_ = discardPublisher{}.WriteMessages(r.Context(), contract.Message{Value: buf.Bytes()})
		w.WriteHeader(200)
	})
	body := signed(secretNew, docData()).EncodeForm()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", RouteMegviiCallback, bytes.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
	}
}
