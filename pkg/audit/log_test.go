package audit

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/metricstest"
)

type memWriter struct {
	msgs []contract.Message
	err  error
}

func (w *memWriter) WriteMessages(_ context.Context, msgs ...contract.Message) error {
	if w.err != nil {
		return w.err
	}
	w.msgs = append(w.msgs, msgs...)
	return nil
}

func TestLogRecord(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		writeErr  error
		event     contract.AuditEvent
		wantErr   bool
		written   float64
		failed    float64
		wantTopic int
	}{
		{"written", nil, contract.AuditEvent{Viewer: "ana", Role: contract.RoleViewer, Action: contract.AuditRecord, Vendor: contract.Megvii, VerificationID: "b1", Record: true}, false, 1, 0, 1},
		{"broker refuses", errors.New("not enough replicas"), contract.AuditEvent{Viewer: "ana", Role: contract.RoleViewer, Action: contract.AuditRecord}, true, 0, 1, 0},
		{"no viewer", nil, contract.AuditEvent{Action: contract.AuditRecord}, true, 0, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			w := &memWriter{err: c.writeErr}
			l, err := NewLog(LogConfig{Writer: w, Via: "auditor", Now: func() time.Time { return at }, Registry: reg})
			if err != nil {
				t.Fatal(err)
			}
			err = l.Record(context.Background(), c.event)
			if (err != nil) != c.wantErr {
				t.Fatalf("Record: %v, want error %v", err, c.wantErr)
			}
			if got := metricstest.Sum(t, reg, "faceharvest_auditor_audit_events_total", "outcome=written"); got != c.written {
				t.Errorf("written %v, want %v", got, c.written)
			}
			if got := metricstest.Sum(t, reg, "faceharvest_auditor_audit_events_total", "outcome=failed"); got != c.failed {
				t.Errorf("failed %v, want %v", got, c.failed)
			}
			if len(w.msgs) != c.wantTopic {
				t.Fatalf("%d messages written, want %d", len(w.msgs), c.wantTopic)
			}
			if c.wantTopic == 0 {
				return
			}
			env, err := contract.FromMessage(w.msgs[0])
			if err != nil {
				t.Fatal(err)
			}
			var got contract.AuditEvent
			if err := json.Unmarshal(env.Value, &got); err != nil {
				t.Fatal(err)
			}
			if env.Key != "ana" || env.Type != contract.TypeAudit || env.Source != "auditor" || env.ID != got.ID || len(got.ID) != 32 || !got.At.Equal(at) || got.Via != "auditor" {
				t.Errorf("envelope %+v, event %+v", env, got)
			}
		})
	}
}

func TestEventIDsDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewEventID()
		if seen[id] {
			t.Fatalf("id %s twice", id)
		}
		seen[id] = true
	}
}
