package vendorsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/faceharvest/faceharvest/pkg/megvii"
)

// VerificationState is what the simulator knows of one verification,
// including every call made for it.
type VerificationState struct {
	Vendor  string    `json:"vendor"`
	ID      string    `json:"id"`
	BizNo   string    `json:"biz_no,omitempty"`
	Created time.Time `json:"created"`
	Status  string    `json:"status"`
	// Calls counts requests naming this verification, by endpoint.
	Calls map[string]int `json:"calls"`
	// Outcomes counts answers by outcome (Megvii: get_result's answers;
	// Baidu: "<endpoint>:<outcome>").
	Outcomes map[string]int `json:"outcomes"`
	// Served counts Megvii get_result answers that carried data: the budget
	// spent. More than one means a one-shot result was fetched twice.
	Served            int        `json:"served"`
	CompletedAt       *time.Time `json:"completed_at,omitempty"`
	CallbackTries     int        `json:"callback_tries"`
	CallbackDelivered bool       `json:"callback_delivered"`
	CallbackOutcome   string     `json:"callback_outcome,omitempty"`
	// ReturnOutcome is how the browser's POST to a Megvii return_url went.
	ReturnOutcome string `json:"return_outcome,omitempty"`
	// H5Opened counts how often a Baidu verification's H5 URL was opened.
	H5Opened int `json:"h5_opened,omitempty"`
}

func copyMap(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Megvii returns a Megvii verification's state.
func (s *Sim) Megvii(bizID string) (VerificationState, bool) {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.megvii[bizID]
	if v == nil {
		return VerificationState{}, false
	}
	return s.megviiStateLocked(v, now), true
}

func (s *Sim) megviiStateLocked(v *megviiVerification, now time.Time) VerificationState {
	st := string(v.status(now))
	if now.After(v.created.Add(s.cfg.MegviiRetention)) {
		st += " (destroyed)"
	}
	return VerificationState{Vendor: "megvii", ID: v.bizID, BizNo: v.spec.BizNo, Created: v.created, Status: st,
		Calls: copyMap(v.calls), Outcomes: copyMap(v.outcomes), Served: v.served,
		CallbackTries: v.cbTries, CallbackDelivered: v.cbDone, CallbackOutcome: v.cbOutcome, ReturnOutcome: v.returnOutcome}
}

// Baidu returns a Baidu verification's state.
func (s *Sim) Baidu(verifyToken string) (VerificationState, bool) {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.baidu[verifyToken]
	if v == nil {
		return VerificationState{}, false
	}
	return s.baiduStateLocked(v, now), true
}

func (s *Sim) baiduStateLocked(v *baiduVerification, now time.Time) VerificationState {
	st := VerificationState{Vendor: "baidu", ID: v.token, Created: v.created, Calls: copyMap(v.calls), Outcomes: copyMap(v.outcomes),
		CallbackTries: v.rdTries, CallbackDelivered: v.rdDone, CallbackOutcome: v.rdResult, H5Opened: v.opened}
	done, finished := v.completedAt(s.cfg.BaiduVerifyTokenTTL)
	switch {
	case !finished && now.After(v.created.Add(s.cfg.BaiduVerifyTokenTTL)):
		st.Status = "unused (token expired)"
	case !finished || now.Before(done):
		st.Status = "pending"
	case now.After(done.Add(s.cfg.BaiduRetention)):
		st.Status = v.spec.Outcome + " (purged)"
	default:
		st.Status = v.spec.Outcome
	}
	if finished {
		st.CompletedAt = &done
	}
	return st
}

// Stats summarises the simulator for tests and people.
type Stats struct {
	Now                 time.Time      `json:"now"`
	MegviiVerifications int            `json:"megvii_verifications"`
	BaiduVerifications  int            `json:"baidu_verifications"`
	MegviiCalls         map[string]int `json:"megvii_calls"` // by endpoint (get_token and verifyToken/generate: every request)
	BaiduCalls          map[string]int `json:"baidu_calls"`  // by endpoint
	MegviiServed        int            `json:"megvii_served"`
	// MegviiServedTwice counts verifications whose one-shot result was
	// served more than once (more than the call budget allows is impossible;
	// this counts repeats within a budget above one).
	MegviiServedTwice   int `json:"megvii_served_twice"`
	MegviiDestroyedHits int `json:"megvii_destroyed_answers"`
	PendingDeliveries   int `json:"pending_deliveries"`
}

// Stats returns the summary.
func (s *Sim) Stats() Stats {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Now: now, MegviiVerifications: len(s.megvii), BaiduVerifications: len(s.baidu), MegviiCalls: map[string]int{}, BaiduCalls: map[string]int{}, PendingDeliveries: s.due.Len()}
	for _, v := range s.megvii {
		for k, n := range v.calls {
			st.MegviiCalls[k] += n
		}
		st.MegviiServed += v.served
		if v.served > 1 {
			st.MegviiServedTwice++
		}
		st.MegviiDestroyedHits += v.outcomes[megvii.ErrDataDestroyed]
	}
	for _, v := range s.baidu {
		for k, n := range v.calls {
			st.BaiduCalls[k] += n
		}
	}
	// The calls that name no verification yet.
	st.MegviiCalls["get_token"] = s.apiCalls[[2]string{"megvii", "get_token"}]
	st.BaiduCalls["verifyToken/generate"] = s.apiCalls[[2]string{"baidu", "verifyToken/generate"}]
	return st
}

// ControlHandler serves the simulator's own control API under /sim/.
func (s *Sim) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sim/megvii/verifications", func(w http.ResponseWriter, r *http.Request) {
		var spec MegviiSpec
		create(w, r, &spec, func() (any, error) { return s.CreateMegvii(spec) })
	})
	mux.HandleFunc("POST /sim/baidu/verifications", func(w http.ResponseWriter, r *http.Request) {
		var spec BaiduSpec
		create(w, r, &spec, func() (any, error) { return s.CreateBaidu(spec) })
	})
	mux.HandleFunc("GET /sim/{vendor}/verifications/{id}", func(w http.ResponseWriter, r *http.Request) {
		var st VerificationState
		var ok bool
		switch r.PathValue("vendor") {
		case "megvii":
			st, ok = s.Megvii(r.PathValue("id"))
		case "baidu":
			st, ok = s.Baidu(r.PathValue("id"))
		}
		if !ok {
			controlError(w, http.StatusNotFound, errors.New("no such verification"))
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST /sim/baidu/verifications/{id}/pages", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			SuccessURL string `json:"success_url"`
			FailureURL string `json:"failure_url"`
		}
		if err := decodeStrict(r, &req); err != nil {
			controlError(w, http.StatusBadRequest, err)
			return
		}
		if err := s.SetBaiduPages(r.PathValue("id"), req.SuccessURL, req.FailureURL); err != nil {
			controlError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, req)
	})
	mux.HandleFunc("POST /sim/{vendor}/verifications/{id}/faults", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Kinds []string `json:"kinds"`
		}
		if err := decodeStrict(r, &req); err != nil {
			controlError(w, http.StatusBadRequest, err)
			return
		}
		if err := s.QueueVerificationFaults(r.PathValue("vendor"), r.PathValue("id"), req.Kinds); err != nil {
			controlError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"queued": len(req.Kinds)})
	})
	mux.HandleFunc("POST /sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Vendor string `json:"vendor"`
			Kind   string `json:"kind"`
			Count  int    `json:"count"`
		}
		if err := decodeStrict(r, &req); err != nil {
			controlError(w, http.StatusBadRequest, err)
			return
		}
		if err := s.QueueFault(req.Vendor, req.Kind, req.Count); err != nil {
			controlError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, req)
	})
	mux.HandleFunc("GET /sim/clock", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"now": s.clk.Now(), "scale": s.clk.Scale()})
	})
	mux.HandleFunc("POST /sim/clock", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Advance *Duration  `json:"advance"`
			Set     *time.Time `json:"set"`
			Scale   *float64   `json:"scale"`
		}
		if err := decodeStrict(r, &req); err != nil {
			controlError(w, http.StatusBadRequest, err)
			return
		}
		if req.Scale != nil && *req.Scale < 0 {
			controlError(w, http.StatusBadRequest, errors.New("scale must not be negative"))
			return
		}
		if req.Set != nil {
			s.clk.Set(*req.Set)
		}
		if req.Advance != nil {
			if *req.Advance < 0 {
				controlError(w, http.StatusBadRequest, errors.New("the clock does not go back: advance must not be negative"))
				return
			}
			s.clk.Advance(time.Duration(*req.Advance))
		}
		if req.Scale != nil {
			s.clk.SetScale(*req.Scale)
		}
		writeJSON(w, http.StatusOK, map[string]any{"now": s.clk.Now(), "scale": s.clk.Scale()})
	})
	mux.HandleFunc("POST /sim/dispatch", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"delivered": s.DispatchDue(r.Context())})
	})
	mux.HandleFunc("POST /sim/baidu/revoke-tokens", func(w http.ResponseWriter, r *http.Request) {
		s.RevokeBaiduTokens()
		writeJSON(w, http.StatusOK, map[string]any{"revoked": true})
	})
	mux.HandleFunc("GET /sim/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("GET /sim/verifications", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.States())
	})
	return mux
}

// States lists every verification's state, Megvii first, each by creation.
func (s *Sim) States() []VerificationState {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]VerificationState, 0, len(s.megvii)+len(s.baidu))
	for _, v := range s.megvii {
		out = append(out, s.megviiStateLocked(v, now))
	}
	for _, v := range s.baidu {
		out = append(out, s.baiduStateLocked(v, now))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Vendor != out[j].Vendor {
			return out[i].Vendor > out[j].Vendor
		}
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// QueueVerificationFaults makes one verification's next calls answer with
// the given faults, in order.
func (s *Sim) QueueVerificationFaults(vendor, id string, kinds []string) error {
	for _, k := range kinds {
		if !validFault(k) {
			return fmt.Errorf("unknown fault %q (known: %v)", k, FaultKinds)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch vendor {
	case "megvii":
		if v := s.megvii[id]; v != nil {
			v.spec.Faults = append(v.spec.Faults, kinds...)
			return nil
		}
	case "baidu":
		if v := s.baidu[id]; v != nil {
			v.spec.Faults = append(v.spec.Faults, kinds...)
			return nil
		}
	default:
		return fmt.Errorf("unknown vendor %q", vendor)
	}
	return fmt.Errorf("no %s verification %q", vendor, id)
}

// create decodes a spec and creates one verification, or ?count=N of them.
func create(w http.ResponseWriter, r *http.Request, spec any, fn func() (any, error)) {
	if err := decodeStrict(r, spec); err != nil {
		controlError(w, http.StatusBadRequest, err)
		return
	}
	n := 1
	if c := r.URL.Query().Get("count"); c != "" {
		var err error
		if n, err = strconv.Atoi(c); err != nil || n < 1 || n > 100000 {
			controlError(w, http.StatusBadRequest, errors.New("count must be 1-100000"))
			return
		}
	}
	out := make([]any, 0, n)
	for i := 0; i < n; i++ {
		c, err := fn()
		if err != nil {
			controlError(w, http.StatusBadRequest, err)
			return
		}
		out = append(out, c)
	}
	if r.URL.Query().Get("count") == "" {
		writeJSON(w, http.StatusCreated, out[0])
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}

func controlError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// ReturnURL returns the return_url a Megvii verification was issued with
// ("" if unknown or none).
func (s *Sim) ReturnURL(bizID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.megvii[bizID]; v != nil {
		return v.spec.ReturnURL
	}
	return ""
}
