package contract

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

func benchEvent() Event {
	return Event{Vendor: Megvii, VerificationID: "1462259748,52b13fb5-8dfb-4537-a62b-a641d5e929f1", BizNo: "order-1", ReceivedAt: time.Now().UTC(), Status: "OK",
		Data: string(vendordocs.MustExample("megvii_get_result_ok_000.json"))}
}

// BenchmarkEventJSON encodes a callback's event as ingest does;
// BenchmarkEventJSONBaseline lets encoding/json reflect over the struct.
func BenchmarkEventJSON(b *testing.B) {
	ev := benchEvent()
	for b.Loop() {
		_, _ = ev.MarshalJSON()
	}
}

func BenchmarkEventJSONBaseline(b *testing.B) {
	ev := reflected(benchEvent())
	for b.Loop() {
		_, _ = json.Marshal(ev)
	}
}
