//go:build race

package doccheck

func init() { raceEnabled = true }
