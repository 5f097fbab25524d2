package handler

import (
	"strings"
	"testing"
)

// The command table is read by people: it stays sorted, without
// duplicates, so a command is found where the eye expects it.
func TestCommandTableSorted(t *testing.T) {
	for i := 1; i < len(commands); i++ {
		prev, cur := strings.ToLower(commands[i-1].name), strings.ToLower(commands[i].name)
		if prev >= cur {
			t.Errorf("commands[%d] %q is not after %q", i, commands[i].name, commands[i-1].name)
		}
	}
	if len(commandIndex) != len(commands) {
		t.Errorf("%d commands indexed, %d in the table", len(commandIndex), len(commands))
	}
}
