package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// Presigner issues a URL that reads one stored object for a while without
// credentials (objstore.S3.PresignGet).
type Presigner interface {
	PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error)
}

// View is what `faceharvest show` and `find` print for one verification:
// the record as stored, its timeline, its problems and a presigned link to
// each object it references.
type View struct {
	Key      string   `json:"key"` // <vendor>:<id>
	RecordID string   `json:"ce_id"`
	Timeline []Moment `json:"timeline"`
	Problems []string `json:"problems"`
	Links    []Link   `json:"links"`
	// Withheld names the objects held but not linked because the display
	// was not asked to unmask identities (the evidence document, ID-card
	// images): "evidence", or a media kind with its attempt.
	Withheld []string        `json:"withheld,omitempty"`
	Record   json.RawMessage `json:"record"`
}

// Moment is one point of a verification's timeline.
type Moment struct {
	What string    `json:"what"` // issued, completed, harvested, decided, archived
	At   time.Time `json:"at"`
}

// Link is a presigned URL of one stored object.
type Link struct {
	What      string    `json:"what"` // evidence, record, or the media kind (image_best, face_image, ...)
	Attempt   int       `json:"attempt,omitempty"`
	Key       string    `json:"key"`
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Shown is one display of verifications to a person by the operator
// command (show or find): what its audit event on faceid.audit records.
// The command writes the event before it prints anything, and prints
// nothing when the event was not written.
type Shown struct {
	Viewer        string    `json:"viewer"`
	Command       string    `json:"command"` // show or find
	BizNo         string    `json:"biz_no"`  // the biz_no found, or the one verification's
	Verifications []string  `json:"verifications"`
	Objects       []string  `json:"objects"` // keys a link was issued for
	LinkExpiry    time.Time `json:"link_expiry"`
	At            time.Time `json:"at"`
	// EvidenceLinked is set when a link was issued for an evidence
	// document, which holds the unmasked name and ID number, or for an
	// ID-card image (contract.IdentityMedia), which shows them.
	EvidenceLinked bool `json:"evidence_linked"`
}

// Add counts v as shown: its verification, and a link to each of its
// objects.
func (s *Shown) Add(v View) {
	s.Verifications = append(s.Verifications, v.Key)
	for _, l := range v.Links {
		s.Objects = append(s.Objects, l.Key)
		if l.What == "evidence" || contract.IdentityMedia(l.What) {
			s.EvidenceLinked = true
		}
	}
}

// Event is the display's audit event: a show is a record view of its
// verification, a find a search naming every verification it showed; both
// showed the records (identity masked) and list the objects linked and
// when the links expire. A link to an evidence document or an ID-card
// image gives whoever holds it the unmasked identity: such a display is
// identity_unmasked.
// Via, and the ID, are the audit Log's to fill in.
func (s Shown) Event() contract.AuditEvent {
	e := contract.AuditEvent{Viewer: s.Viewer, Role: contract.RoleOperator, At: s.At, Action: contract.AuditRecord,
		BizNo: s.BizNo, Verifications: s.Verifications, Record: true, IdentityUnmasked: s.EvidenceLinked, LinkedKeys: s.Objects}
	if s.Command == "find" {
		e.Action = contract.AuditSearch
	} else if len(s.Verifications) == 1 {
		e.Vendor, e.VerificationID, _ = ParseKey(s.Verifications[0])
	}
	if len(s.Objects) > 0 {
		exp := s.LinkExpiry
		e.LinksExpireAt = &exp
	}
	return e
}

// NewView builds a verification's view with links valid for expiry from
// now. Without identity, the objects that hold or show the unmasked
// identity (the evidence document, ID-card images) get no link: they are
// named in Withheld.
func NewView(ctx context.Context, v Verification, p Presigner, expiry time.Duration, now time.Time, identity bool) (View, error) {
	r := v.Record
	out := View{Key: contract.Key(r.Vendor, r.VerificationID), RecordID: v.Index.RecordID, Problems: r.Problems, Record: json.RawMessage(v.RecordJSON)}
	if out.Problems == nil {
		out.Problems = []string{}
	}
	add := func(what string, t *time.Time) {
		if t != nil && !t.IsZero() {
			out.Timeline = append(out.Timeline, Moment{What: what, At: t.UTC()})
		}
	}
	add("issued", r.Times.IssuedAt)
	add("completed", r.Times.CompletedAt)
	add("harvested", r.Times.HarvestedAt)
	add("decided", &r.Times.DecidedAt)
	add("archived", &r.Times.ArchivedAt)
	what := map[string]Link{}
	for _, m := range r.Media {
		what[m.Key] = Link{What: m.Kind, Attempt: m.Attempt}
	}
	for _, o := range Objects(v) {
		l, ok := what[o.Key]
		switch {
		case o.Key == v.Index.Evidence.Key:
			l.What = "evidence"
		case o.Key == v.Index.Record.Key:
			l.What = "record"
		case !ok:
			l.What = "media"
		}
		if !identity && (l.What == "evidence" || contract.IdentityMedia(l.What)) {
			w := l.What
			if l.Attempt > 0 {
				w += fmt.Sprintf(" (attempt %d)", l.Attempt)
			}
			out.Withheld = append(out.Withheld, w)
			continue
		}
		u, err := p.PresignGet(ctx, o.Key, expiry)
		if err != nil {
			return View{}, err
		}
		l.Key, l.SHA256, l.Size, l.URL, l.ExpiresAt = o.Key, o.SHA256, o.Size, u, now.Add(expiry).UTC().Truncate(time.Second)
		out.Links = append(out.Links, l)
	}
	return out, nil
}

// WindowLeft is how much of the vendor's retention window was left at the
// harvest's last call.
func (v View) windowLeft() string {
	var r struct {
		W float64 `json:"window_left_seconds"`
	}
	_ = json.Unmarshal(v.Record, &r)
	return (time.Duration(r.W * float64(time.Second))).Round(time.Second).String()
}

// WriteText prints views for a person.
func WriteText(w io.Writer, views []View) error {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	for i, v := range views {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		var r contract.Record
		if err := json.Unmarshal(v.Record, &r); err != nil {
			return err
		}
		fmt.Fprintf(tw, "verification\t%s\n", esc(v.Key))
		fmt.Fprintf(tw, "ce_id\t%s\n", esc(v.RecordID))
		if r.BizNo != "" {
			fmt.Fprintf(tw, "biz_no\t%s\n", esc(r.BizNo))
		}
		outcome := r.Outcome
		if r.Reason != "" {
			outcome += " (" + r.Reason + ")"
		}
		fmt.Fprintf(tw, "outcome\t%s\n", esc(outcome))
		if r.FlowStatus != "" {
			fmt.Fprintf(tw, "flow status\t%s\n", esc(r.FlowStatus))
		}
		if r.Passed != nil {
			fmt.Fprintf(tw, "passed\t%t\n", *r.Passed)
		}
		if r.Identity != nil {
			fmt.Fprintf(tw, "identity\t%s %s (%s, masked %t)\n", esc(r.Identity.Name), esc(r.Identity.IDNumber), esc(r.Identity.Source), r.Identity.Masked)
		}
		fmt.Fprintf(tw, "timeline\t\n")
		for _, m := range v.Timeline {
			fmt.Fprintf(tw, "  %s\t%s\n", m.What, m.At.Format(time.RFC3339Nano))
		}
		fmt.Fprintf(tw, "  window left at harvest\t%s\n", v.windowLeft())
		fmt.Fprintf(tw, "problems\t%d\n", len(v.Problems))
		for _, p := range v.Problems {
			fmt.Fprintf(tw, "  -\t%s\n", esc(p))
		}
		if len(v.Links) > 0 {
			fmt.Fprintf(tw, "links\texpire %s\n", v.Links[0].ExpiresAt.Format(time.RFC3339))
		}
		for _, l := range v.Links {
			what := l.What
			if l.Attempt > 0 {
				what += fmt.Sprintf(" (attempt %d)", l.Attempt)
			}
			fmt.Fprintf(tw, "  %s\t%s\n", esc(what), esc(l.URL))
		}
		if len(v.Withheld) > 0 {
			fmt.Fprintf(tw, "withheld\t%s (identity data: --identity links them)\n", esc(strings.Join(v.Withheld, ", ")))
		}
	}
	return tw.Flush()
}

// esc escapes what a terminal would act on: control and format characters
// (newline, tab, escape sequences, C1, line separators, bidirectional
// overrides) and invalid UTF-8, as Go escapes (\n, \x1b, \u2028): text
// from the store (a biz_no, a vendor's reason) cannot forge a line of the
// output or drive the terminal.
func esc(s string) string {
	if contract.PlainText(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case contract.Unprintable(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// WriteJSON prints views for scripts: one JSON array on one line, each
// view's record byte for byte as stored (indenting would change them).
func WriteJSON(w io.Writer, views []View) error {
	if views == nil {
		views = []View{}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(views)
}

// ParseKey splits <vendor>:<id>.
func ParseKey(s string) (contract.Vendor, string, error) {
	v, id, ok := strings.Cut(s, ":")
	if !ok || id == "" || (contract.Vendor(v) != contract.Megvii && contract.Vendor(v) != contract.Baidu) {
		return "", "", fmt.Errorf("%q: want <vendor>:<id> with vendor megvii or baidu", s)
	}
	return contract.Vendor(v), id, nil
}
