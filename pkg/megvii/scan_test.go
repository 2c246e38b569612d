package megvii

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// TestSpecial8 checks the eight-byte skip against the byte rule: no mark
// when no byte needs a look, else the lowest mark on the first such byte.
// Every byte value at every position, over every fill, after every other
// byte value at every earlier position, and random words.
func TestSpecial8(t *testing.T) {
	first := func(w []byte) int {
		for i, c := range w {
			if c == '"' || c == '\\' || c < 0x20 {
				return i
			}
		}
		return 8
	}
	check := func(w []byte) {
		m := special8(binary.LittleEndian.Uint64(w))
		got := 8
		if m != 0 {
			got = bits.TrailingZeros64(m) >> 3
		}
		if got != first(w) {
			t.Fatalf("special8(%q) = %#x: first at %d, want %d", w, m, got, first(w))
		}
	}
	for pos := range 8 {
		for c := range 256 {
			for _, fill := range []byte{'A', 0x80, 0xFF, 0x20, 0x21, 0x5D, '"', 0} {
				w := bytes.Repeat([]byte{fill}, 8)
				w[pos] = byte(c)
				check(w)
				for pos2 := range pos {
					for c2 := range 256 {
						w[pos2] = byte(c2)
						check(w)
					}
					w[pos2] = fill
				}
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
