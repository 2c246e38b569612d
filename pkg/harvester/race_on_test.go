//go:build race

package harvester

// The race detector slows everything about tenfold: the scale test runs a
// smaller workload under it (make test) and the full 10,000 without it.
const raceEnabled = true
