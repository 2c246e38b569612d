package web

import (
	"net/http"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// TestIDCardImagesAreIdentityData: an ID-card image (Megvii's
// image_idcard_front/back, Baidu's front_image/back_image) shows the name
// and ID number. The viewer role gets 403 for it and no event; the masked
// page does not embed it (it says one exists); the identity role reads it
// with an event saying identity_unmasked, and its unmasked page embeds it.
// Other media stay the viewer's, recorded as masked.
func TestIDCardImagesAreIdentityData(t *testing.T) {
	f := newFixture(t, nil)
	for _, key := range []string{"megvii:biz-m-1", "baidu:vt-b-1"} {
		rec := f.recs[key]
		page := verificationPath(rec.Vendor, rec.VerificationID)
		var idcard, face []int
		for n, m := range mediaOf(rec) {
			if m.Status != contract.MediaStored || m.Key == "" {
				continue
			}
			if strings.HasPrefix(m.Kind, "idcard") {
				idcard = append(idcard, n)
			} else {
				face = append(face, n)
			}
		}
		if len(idcard) == 0 || len(face) == 0 {
			t.Fatalf("%s: the fixture has %d ID-card and %d other stored media", key, len(idcard), len(face))
		}
		t.Run(key, func(t *testing.T) {
			for _, tok := range []string{viewerToken, identityToken} {
				resp, body := f.do(req{path: page, header: bearer(tok)})
				if resp.StatusCode != 200 {
					t.Fatalf("masked page: %d", resp.StatusCode)
				}
				for _, n := range idcard {
					if strings.Contains(body, page+"/media/"+itoa(n)+"\"") {
						t.Errorf("the masked page (token %.8s) links the ID-card image %d", tok, n)
					}
				}
				if !strings.Contains(body, "ID-card image") {
					t.Errorf("the masked page does not say that ID-card images exist")
				}
				for _, n := range face {
					if !strings.Contains(body, page+"/media/"+itoa(n)+"\"") {
						t.Errorf("the masked page lacks the face image %d", n)
					}
				}
			}
			_ = f.eventsUpToSentinel()
			for _, n := range idcard {
				resp, _ := f.do(req{path: page + "/media/" + itoa(n), header: bearer(viewerToken)})
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("viewer reading ID-card image %d: %d, want 403", n, resp.StatusCode)
				}
			}
			if es := sinceLastSentinel(f.eventsUpToSentinel()); len(es) != 0 {
				t.Errorf("a refused ID-card image wrote %d events: %+v", len(es), es)
			}
			for _, n := range idcard {
				resp, _ := f.do(req{path: page + "/media/" + itoa(n), header: bearer(identityToken)})
				if resp.StatusCode != 200 {
					t.Errorf("identity role reading ID-card image %d: %d, want 200", n, resp.StatusCode)
				}
				es := sinceLastSentinel(f.eventsUpToSentinel())
				if len(es) != 1 || es[0].Action != contract.AuditMedia || !es[0].IdentityUnmasked || es[0].Role != contract.RoleIdentity {
					t.Errorf("identity role reading ID-card image %d: events %+v, want one media event with identity_unmasked", n, es)
				}
			}
			resp, _ := f.do(req{path: page + "/media/" + itoa(face[0]), header: bearer(viewerToken)})
			es := sinceLastSentinel(f.eventsUpToSentinel())
			if resp.StatusCode != 200 || len(es) != 1 || es[0].IdentityUnmasked {
				t.Errorf("viewer reading a face image: %d, events %+v", resp.StatusCode, es)
			}
			_, body := f.do(req{path: page + "/identity", header: bearer(identityToken)})
			for _, n := range idcard {
				if !strings.Contains(body, page+"/media/"+itoa(n)+"\"") {
					t.Errorf("the unmasked page lacks the ID-card image %d", n)
				}
			}
		})
	}
}
