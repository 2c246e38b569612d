package swar

import (
	"encoding/binary"
	"math/bits"
	"testing"
)

// TestLowestMarkExact: for every byte value at every position, after every
// byte value at every earlier position, the lowest mark of Zero and Less is
// the first byte the rule matches.
func TestLowestMarkExact(t *testing.T) {
	for _, c := range []struct {
		name string
		fn   func(uint64) uint64
		rule func(byte) bool
	}{
		{"Zero", Zero, func(b byte) bool { return b == 0 }},
		{"Less 0x20", func(v uint64) uint64 { return Less(v, 0x20) }, func(b byte) bool { return b < 0x20 }},
		{"Less 0x80", func(v uint64) uint64 { return Less(v, 0x80) }, func(b byte) bool { return b < 0x80 }},
	} {
		var w [8]byte
		for pos := range 8 {
			for v := range 256 {
				for pos2 := range pos + 1 {
					for v2 := range 256 {
						w = [8]byte{'A', 'A', 'A', 'A', 'A', 'A', 'A', 'A'}
						w[pos] = byte(v)
						if pos2 < pos {
							w[pos2] = byte(v2)
						}
						want := 8
						for i, b := range w {
							if c.rule(b) {
								want = i
								break
							}
						}
						got := 8
						if m := c.fn(binary.LittleEndian.Uint64(w[:])) & Highs; m != 0 {
							got = bits.TrailingZeros64(m) >> 3
						}
						if got != want {
							t.Fatalf("%s(%q): first mark at %d, want %d", c.name, w, got, want)
						}
						if pos2 == pos {
							break
						}
					}
				}
			}
		}
	}
}
