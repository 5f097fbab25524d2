package mongotest

import (
	"sync"
	"time"
)

// failPoints holds the configured failpoints. The full configureFailPoint
// command is in failpoint_cmd.go.
type failPoints struct {
	mu sync.Mutex
}

func newFailPoints() *failPoints { return &failPoints{} }

// action is what a matching failpoint does to a command.
type action struct {
	err       *CommandError
	closeConn bool
	blockFor  time.Duration
}

// match returns the action of a failCommand failpoint for the command, or nil.
func (f *failPoints) match(appName, cmd string) *action { return nil }

// matchAfterCheckout returns the action of failGetMoreAfterCursorCheckout, or nil.
func (f *failPoints) matchAfterCheckout(appName, cmd string) *action { return nil }
