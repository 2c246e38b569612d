//go:build !race

package harvester

const raceEnabled = false
