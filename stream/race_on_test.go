//go:build race

package stream_test

// raceEnabled tells whether this test binary was built with -race.
const raceEnabled = true
