package megvii

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestPlain8 checks the eight-byte skip against the byte rule for every
// byte value at every position, and for random words.
func TestPlain8(t *testing.T) {
	plain := func(w []byte) bool {
		for _, c := range w {
			if c == '"' || c == '\\' || c < 0x20 {
				return false
			}
		}
		return true
	}
	check := func(w []byte) {
		if got := plain8(binary.LittleEndian.Uint64(w)); got != plain(w) {
			t.Fatalf("plain8(%q) = %v", w, got)
		}
	}
	for pos := range 8 {
		for c := range 256 {
			for _, fill := range []byte{'A', 0x80, 0xFF, 0x20, 0x21, 0x5D} {
				w := bytes.Repeat([]byte{fill}, 8)
				w[pos] = byte(c)
				check(w)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	w := make([]byte, 8)
	for range 200_000 {
		binary.LittleEndian.PutUint64(w, r.Uint64())
		check(w)
	}
}
