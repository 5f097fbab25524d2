package mongotest

import (
	"slices"
	"time"

	"github.com/go-changestream/changestream/mongotest/internal/failpoint"
)

// FailPoint describes a fault the server injects into the commands it
// names, as a real server's test-only failpoints do: configure one with
// Server.FailCommand, or from a client with the configureFailPoint command
// (failCommand or failGetMoreAfterCursorCheckout).
//
// A matching command is first delayed by BlockFor, then its connection is
// closed (CloseConnection), or it fails with ErrorCode, or, with neither,
// it runs normally after the delay.
type FailPoint struct {
	// Commands names the commands to fail, as the driver sends them, such
	// as "getMore", "insert" or "aggregate". An empty list matches every
	// command. The handshake (hello, isMaster) and configureFailPoint are
	// never failed.
	Commands []string

	// Times is how many matching commands fail before the failpoint turns
	// itself off. The zero value means every matching command fails until
	// ClearFailPoints.
	Times int

	// Skip lets the first Skip matching commands through before the
	// failpoint starts failing. The zero value skips none.
	Skip int

	// ErrorCode is the server error code of the failure, such as 6
	// (HostUnreachable) or 10107 (NotWritablePrimary). The zero value
	// means no error reply: the command is closed or delayed only.
	ErrorCode int32

	// ErrorLabels are the labels of the error reply. A nil slice lets the
	// server add the labels a real server would: RetryableWriteError on a
	// write that fails with a retryable code, and, for a failure after
	// cursor checkout, ResumableChangeStreamError when the code lets a
	// change stream resume. A non-nil empty slice means no labels.
	ErrorLabels []string

	// CloseConnection closes the client's connection instead of replying,
	// as a network failure would.
	CloseConnection bool

	// BlockFor delays each matching command by this long before it fails
	// or runs. The zero value means no delay.
	BlockFor time.Duration

	// AppName, when set, limits the failpoint to clients whose handshake
	// carried this application name (options.Client().SetAppName).
	AppName string

	// AfterCursorCheckout fails getMore only after it has found its cursor,
	// like the server's failGetMoreAfterCursorCheckout: the failure then
	// looks like an error of the cursor itself, and a change stream sees
	// ResumableChangeStreamError on resumable codes. Commands is ignored.
	AfterCursorCheckout bool

	// AfterExecution applies the failpoint after the command has run, so
	// that its effect stays and only the reply is lost: with
	// CloseConnection the client sees a network error for a write the
	// server applied, the case retryable writes exist for (the driver
	// retries, and the server answers the retry with the remembered
	// reply). It applies to the retryable writes insert, update, delete
	// and findAndModify only. A real server's failCommand has no such
	// option, so configureFailPoint cannot set it.
	AfterExecution bool
}

// FailCommand configures fp on the server. It replaces the failpoint of
// the same kind (before or after cursor checkout) configured before, as
// the configureFailPoint command does on a real server.
func (s *Server) FailCommand(fp FailPoint) {
	fp.Commands = slices.Clone(fp.Commands)
	if fp.ErrorLabels != nil {
		fp.ErrorLabels = slices.Clone(fp.ErrorLabels)
	}
	s.fp.Configure(failpoint.Spec{
		Commands: fp.Commands, Times: fp.Times, Skip: fp.Skip, ErrorCode: fp.ErrorCode,
		ErrorLabels: fp.ErrorLabels, CloseConnection: fp.CloseConnection, BlockFor: fp.BlockFor,
		AppName: fp.AppName, AfterCursorCheckout: fp.AfterCursorCheckout, AfterExecution: fp.AfterExecution,
	})
}

// ClearFailPoints turns every failpoint off.
func (s *Server) ClearFailPoints() { s.fp.Clear() }
