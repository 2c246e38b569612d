package contract

import (
	"errors"
	"testing"
	"time"
)

func TestKeys(t *testing.T) {
	cases := []struct {
		key     string
		vendor  Vendor
		id      string
		wantErr bool
	}{
		{"megvii:1462259748,52b13fb5-8dfb", Megvii, "1462259748,52b13fb5-8dfb", false},
		{"baidu:Yz9rWITm4vak16PBAh5x8oG7", Baidu, "Yz9rWITm4vak16PBAh5x8oG7", false},
		{"baidu:a:b", Baidu, "a:b", false},
		{"acme:1", "", "", true},
		{"megvii:", "", "", true},
		{"megvii", "", "", true},
	}
	for _, c := range cases {
		v, id, err := SplitKey(c.key)
		if (err != nil) != c.wantErr || v != c.vendor || id != c.id {
			t.Errorf("%q: %q %q %v", c.key, v, id, err)
		}
		if err == nil && Key(v, id) != c.key {
			t.Errorf("round trip of %q", c.key)
		}
	}
	// IsKey agrees with building the key, for every split of every key.
	for _, key := range []string{"megvii:a", "baidu:a:b", "megvii:", ":x", "megviia", "", "baidu:", "megvii:ab"} {
		for _, v := range []Vendor{Megvii, Baidu, "", "megvii:a"} {
			for _, id := range []string{"", "a", "b", "a:b", "ab", "x"} {
				if got, want := IsKey(key, v, id), key == Key(v, id); got != want {
					t.Errorf("IsKey(%q, %q, %q) = %v, want %v", key, v, id, got, want)
				}
			}
		}
	}
	if v, err := ParseVendor(" MEGVII "); err != nil || v != Megvii {
		t.Fatal(v, err)
	}
}

func TestEventIDStable(t *testing.T) {
	a, b := EventID("megvii", "x", "data"), EventID("megvii", "x", "data")
	if a != b || len(a) != 32 {
		t.Fatalf("%s %s", a, b)
	}
	if EventID("megvii", "xd", "ata") == a || EventID("megvii", "x", "data ") == a {
		t.Fatal("different parts, same id")
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	e := Envelope{ID: "id1", Source: "/ingest", Type: TypeMegviiCallback, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Key: "megvii:1", Value: []byte(`{}`)}
	got, err := FromMessage(e.Message())
	if err != nil {
		t.Fatal(err)
	}
	e.ContentType = ContentTypeJSON
	if got.ID != e.ID || got.Source != e.Source || got.Type != e.Type || !got.Time.Equal(e.Time) || got.Key != e.Key || got.ContentType != e.ContentType {
		t.Fatalf("got %+v", got)
	}
	m := e.Message()
	m.Headers = m.Headers[1:]
	if _, err := FromMessage(m); !errors.Is(err, ErrNotCloudEvent) {
		t.Fatalf("missing ce_id: %v", err)
	}
	bad := e.Message()
	bad.Headers[3].Value = []byte("yesterday")
	if _, err := FromMessage(bad); !errors.Is(err, ErrNotCloudEvent) {
		t.Fatalf("bad time: %v", err)
	}
	if _, err := FromMessage(Message{}); err == nil {
		t.Fatal("empty message accepted")
	}
}
