package contract

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A response by reference carries no bytes, and parses back with its
// reference; small bytes travel inline beside it; the message stored with
// the bytes rebuilds the published message; a reference checks the bytes.
func TestResponseByReference(t *testing.T) {
	body := []byte(`{"status":"OK","image":"` + strings.Repeat("A", 100) + `"}`)
	r := Response{Vendor: Megvii, VerificationID: "v1", Endpoint: "get_result", HTTPStatus: 200, Attempt: 1, ContentType: ContentTypeJSON,
		FetchedAt: time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC), Deadline: time.Date(2026, 6, 2, 10, 0, 0, 0, time.UTC), Body: body}
	ref := RawBodyRef(r.ID(), body)
	if !strings.HasPrefix(ref.Key, RawBodyPrefix(r.ID())) || ref.Size != int64(len(body)) || len(ref.SHA256) != 64 {
		t.Fatalf("ref %+v", ref)
	}
	for _, inline := range []bool{false, true} {
		r.Ref, r.Inline = &ref, inline
		m := r.Message("/test")
		if (len(m.Value) > 0) != inline {
			t.Fatalf("inline %v: value of %d bytes", inline, len(m.Value))
		}
		got, err := ParseResponse(m)
		if err != nil || got.Ref == nil || *got.Ref != ref || got.Inline != inline || got.ByReference() == inline {
			t.Fatalf("inline %v: parsed %+v, %v", inline, got.Ref, err)
		}
		if inline && string(got.Body) != string(body) || !inline && got.Body != nil {
			t.Fatalf("inline %v: body %q", inline, got.Body)
		}
		back, err := MessageFromStored(ref.Key, StoredMetadata(m))
		if err != nil || string(back.Key) != string(m.Key) || len(back.Value) != 0 || len(back.Headers) != len(m.Headers) {
			t.Fatalf("stored message: %+v, %v", back, err)
		}
		if _, err := MessageFromStored("raw/v1/other", StoredMetadata(m)); err == nil {
			t.Fatal("a stored message naming another key was taken")
		}
	}
	if err := ref.Check(body); err != nil {
		t.Fatal(err)
	}
	bad := append([]byte{}, body...)
	bad[3] ^= 1
	if err := ref.Check(bad); !errors.Is(err, ErrBodyMismatch) {
		t.Fatalf("changed bytes: %v", err)
	}
	if err := ref.Check(body[1:]); !errors.Is(err, ErrBodyMismatch) {
		t.Fatalf("shorter bytes: %v", err)
	}
	// A message without a reference (written before the claim check)
	// carries its bytes inline, as always.
	r.Ref = nil
	old, err := ParseResponse(r.Message("/test"))
	if err != nil || old.Ref != nil || string(old.Body) != string(body) {
		t.Fatalf("inline response: %+v, %v", old, err)
	}
}

// Bad reference headers are a clear error.
func TestBadReferenceHeaders(t *testing.T) {
	r := Response{Vendor: Megvii, VerificationID: "v1", Endpoint: "get_result", HTTPStatus: 200, FetchedAt: time.Now(), Deadline: time.Now()}
	ref := RawBodyRef(r.ID(), []byte("x"))
	r.Ref = &ref
	for name, change := range map[string]func(*Message){
		"size":   func(m *Message) { set(m, HeaderDataSize, "-1") },
		"sha256": func(m *Message) { set(m, HeaderDataSHA256, "ABC") },
		"key":    func(m *Message) { set(m, HeaderDataRef, "") },
	} {
		m := r.Message("/test")
		change(&m)
		if _, err := ParseResponse(m); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func set(m *Message, key, v string) {
	for i := range m.Headers {
		if m.Headers[i].Key == key {
			m.Headers[i].Value = []byte(v)
		}
	}
}
