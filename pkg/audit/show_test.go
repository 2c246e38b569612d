package audit_test

import (
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/audit"
)

// TestShownWithEvidenceLinkIsUnmasked: a display that gave a link to an
// evidence document (which holds the unmasked name and ID number) is
// recorded as showing the identity unmasked; one without is not.
func TestShownWithEvidenceLinkIsUnmasked(t *testing.T) {
	rec := audit.View{Key: "megvii:m-1", Links: []audit.Link{{What: "record", Key: "r"}, {What: "image_best", Key: "i"}}}
	ev := rec
	ev.Links = append([]audit.Link{{What: "evidence", Key: "e"}}, rec.Links...)
	for _, c := range []struct {
		v    audit.View
		want bool
	}{{rec, false}, {ev, true}} {
		var s audit.Shown
		s.Add(c.v)
		if e := s.Event(); e.IdentityUnmasked != c.want || len(e.LinkedKeys) != len(c.v.Links) || e.VerificationID != "m-1" {
			t.Errorf("links %+v: event %+v, want identity_unmasked %t", c.v.Links, e, c.want)
		}
	}
}

// TestShownWithIDCardLinkIsUnmasked: a link to an ID-card image (identity
// data, as the evidence document) makes the display identity_unmasked.
func TestShownWithIDCardLinkIsUnmasked(t *testing.T) {
	var s audit.Shown
	s.Add(audit.View{Key: "baidu:b-1", Links: []audit.Link{{What: "record", Key: "r"}, {What: "idcard_front", Attempt: 1, Key: "i"}}})
	if e := s.Event(); !e.IdentityUnmasked {
		t.Errorf("a link to an ID-card image: event %+v, want identity_unmasked", e)
	}
}

// TestWriteTextEscapesControlCharacters: a biz_no, reason or problem
// holding a newline, a tab or a terminal escape is printed escaped, so it
// cannot forge a line of the output (here a second "verification").
func TestWriteTextEscapesControlCharacters(t *testing.T) {
	rec := []byte(`{"vendor":"megvii","verification_id":"m-1","biz_no":"loan-1\nverification\tmegvii:forged","outcome":"harvested","reason":"x\u001b[2Jy","problems":["a\rb"]}`)
	var out strings.Builder
	if err := audit.WriteText(&out, []audit.View{{Key: "megvii:m-1", Record: rec, Problems: []string{"a\rb"}}}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if strings.Count(s, "\nverification") != 0 || strings.ContainsAny(s, "\x1b\r") || !strings.Contains(s, `loan-1\nverification\tmegvii:forged`) {
		t.Fatalf("output:\n%s", s)
	}
}
