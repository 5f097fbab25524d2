package unified

// unsupported says why the runner skips a test it can tell in advance
// it cannot run through the Go driver, or "" when there is none.
func unsupported(f *File, tc *Test) string {
	for i := range tc.Operations {
		if why, ok := driverLacks[tc.Operations[i].Name]; ok {
			return "operation " + tc.Operations[i].Name + ": " + why
		}
	}
	return ""
}
