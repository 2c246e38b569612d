// Package swar tests the eight bytes of a uint64 at once (SIMD within a
// register), for the JSON scanners' and encoders' skips over plain bytes.
//
// Zero and Less leave their verdict in each byte's high bit: OR the tests
// a skip needs, then mask once with Highs. A byte is marked exactly when it
// matches, or when it lies above a byte that does (a borrow runs upwards),
// never below: the lowest mark is the first byte that matches.
package swar

// Ones has one in every byte; Highs every byte's high bit.
const (
	Ones  = 0x0101010101010101
	Highs = 0x8080808080808080
)

// Repeat is c in every byte.
func Repeat(c byte) uint64 { return Ones * uint64(c) }

// Zero marks the zero bytes of y.
func Zero(y uint64) uint64 { return (y - Ones) &^ y }

// Less marks the bytes of v below n, for n up to 0x80 (a byte with its high
// bit set never counts).
func Less(v uint64, n byte) uint64 { return (v - Repeat(n)) &^ v }
