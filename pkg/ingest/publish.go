package ingest

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// publish writes the envelopes and waits for the broker's acknowledgement,
// for PublishTimeout at most. A caller that goes away does not cut it
// short: what was sent is either stored or refused, never abandoned midway.
func (s *Server) publish(envs ...contract.Envelope) *reqError {
	msgs := make([]contract.Message, len(envs))
	for i, e := range envs {
		msgs[i] = e.Message()
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.PublishTimeout)
	defer cancel()
	defer s.waits.end(s.waits.begin(s.cfg.Now()))
	start := time.Now()
	err := s.pub.WriteMessages(ctx, msgs...)
	if err != nil {
		s.m.publishDur.WithLabelValues("error").Observe(time.Since(start).Seconds())
		s.log.Warn("publish failed", "error", err.Error(), "messages", len(msgs))
		return &reqError{status: http.StatusServiceUnavailable, reason: "broker", msg: "the event broker did not acknowledge in time: the event may have been stored; retrying is safe: the event id is stable"}
	}
	s.m.publishOK.Observe(time.Since(start).Seconds())
	for _, e := range envs {
		if c, ok := s.m.publishedByType[e.Type]; ok {
			c.Inc()
		} else {
			s.m.published.WithLabelValues(e.Type).Inc()
		}
	}
	return nil
}

// envelope encodes ev. dataChecked says ev.Data has passed
// megvii.Summarize, so is one valid JSON object: the event then carries it
// as such, not escaped into a string.
func (s *Server) envelope(typ, source, id string, t time.Time, ev contract.Event, dataChecked bool) contract.Envelope {
	var b []byte
	if dataChecked {
		b, _ = ev.AppendJSONDataObject(nil)
	} else {
		b, _ = json.Marshal(ev)
	}
	return contract.Envelope{ID: id, Source: source, Type: typ, Time: t, Key: contract.Key(ev.Vendor, ev.VerificationID), Value: b}
}
