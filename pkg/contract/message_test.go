package contract

import "testing"

func TestMessageHeader(t *testing.T) {
	m := Message{Headers: []Header{{Key: HeaderID, Value: []byte("a")}, {Key: HeaderType, Value: []byte("t")}, {Key: HeaderID, Value: []byte("b")}, {Key: "empty"}}}
	for _, tc := range []struct {
		key  string
		want string
		ok   bool
	}{
		{HeaderID, "b", true}, // the last one wins, as a map built in order
		{HeaderType, "t", true},
		{"empty", "", true},
		{HeaderSource, "", false},
	} {
		v, ok := m.Header(tc.key)
		if string(v) != tc.want || ok != tc.ok {
			t.Errorf("Header(%q) = %q, %v; want %q, %v", tc.key, v, ok, tc.want, tc.ok)
		}
	}
	if _, ok := (Message{}).Header(HeaderID); ok {
		t.Error("a message without headers has one")
	}
}
