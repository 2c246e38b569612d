package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// The signed callback is evidence: the event carries the data, its sign as
// received and which configured secret verified it, by a fingerprint (the
// first 8 hex digits of the secret's SHA-256), never the secret.
func TestMegviiCallbackEventCarriesSignAndSigner(t *testing.T) {
	for _, c := range []struct{ secret, format string }{{secretNew, "form"}, {secretOld, "json"}} {
		f := newFixture(t, nil)
		cb := signed(c.secret, docData())
		body, ct := cb.EncodeForm(), "application/x-www-form-urlencoded"
		if c.format == "json" {
			body, ct = cb.EncodeJSON(), "application/json"
		}
		if r := f.do(t, "POST", RouteMegviiCallback, ct, body, nil); r.code != 200 {
			t.Fatalf("code %d: %s", r.code, r.raw)
		}
		e := f.pub.envelopes(t)[0]
		var ev contract.Event
		if err := json.Unmarshal(e.Value, &ev); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(c.secret))
		if ev.Data != docData() || ev.Sign != cb.Sign || ev.SignedBy != "sha256:"+hex.EncodeToString(sum[:4]) {
			t.Errorf("%s: sign %q signed_by %q, want %q and the fingerprint of the verifying secret", c.format, ev.Sign, ev.SignedBy, cb.Sign)
		}
		if strings.Contains(string(e.Value), c.secret) {
			t.Errorf("%s: the event carries the secret", c.format)
		}
	}
}
