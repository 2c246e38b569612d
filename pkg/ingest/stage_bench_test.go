package ingest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

// simBody is a signed callback as the simulator sends it (compact JSON with
// Chinese text), the body bench/ingest loads ingest with.
func simBody(b *testing.B) []byte {
	sim := vendorsim.New(vendorsim.Config{MegviiAPIKey: "k", MegviiAPISecret: secretNew, BaiduAPIKey: "a", BaiduSecretKey: "s"})
	c, err := sim.CreateMegvii(vendorsim.MegviiSpec{BizNo: "bench-1"})
	if err != nil {
		b.Fatal(err)
	}
	data := sim.CallbackData(c.BizID)
	return megvii.Callback{Data: data, Sign: megvii.Sign(secretNew, data)}.EncodeForm()
}

// BenchmarkStages breaks a callback's handling into its steps, to see where
// BenchmarkMegviiCallbackHandler's time goes.
func BenchmarkStages(b *testing.B) {
	body := simBody(b)
	const ct = "application/x-www-form-urlencoded"
	cb, _ := megvii.DecodeCallback(ct, body)
	secrets := []config.Secret{config.NewSecret("old"), config.NewSecret(secretNew)}
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			_, _ = megvii.DecodeCallback(ct, body)
		}
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			_, _ = megvii.VerifySignature(cb, secrets)
		}
	})
	b.Run("summarize", func(b *testing.B) {
		for b.Loop() {
			_, _ = cb.Summarize()
		}
	})
	res, _ := cb.Summarize()
	now := time.Now().UTC()
	ev := contract.Event{Vendor: contract.Megvii, VerificationID: res.BizInfo.BizID, BizNo: res.BizInfo.BizNo, ReceivedAt: now, Status: string(res.Status), Data: cb.Data}
	b.Run("eventjson", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(ev)
		}
	})
	b.Run("eventjson-data-object", func(b *testing.B) {
		for b.Loop() {
			_, _ = ev.AppendJSONDataObject(nil)
		}
	})
	b.Run("eventid", func(b *testing.B) {
		for b.Loop() {
			_ = contract.EventID(string(contract.Megvii), res.BizInfo.BizID, "callback", cb.Data)
		}
	})
	s := &Server{}
	env := s.envelope(contract.TypeMegviiCallback, "/ingest"+RouteMegviiCallback, "id", now, ev, true)
	b.Run("message", func(b *testing.B) {
		for b.Loop() {
			_ = env.Message()
		}
	})
}
