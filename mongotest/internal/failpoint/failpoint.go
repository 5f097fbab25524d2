// Package failpoint holds mongotest's failpoints, a real server's
// failCommand and failGetMoreAfterCursorCheckout: which commands they
// match, and the one Apply that carries out what a matching one does.
package failpoint

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Spec describes a failpoint; the package mongotest documents each field
// (its FailPoint converts to a Spec).
type Spec struct {
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

	// WriteConcernError, when set, lets the command run and adds this
	// document as the reply's writeConcernError, as failCommand's
	// data.writeConcernError does on a real server. It applies only when
	// ErrorCode is zero and CloseConnection is off.
	WriteConcernError bsoncore.Document

	// OnPrimaryTransactionalWrite makes this a real server's
	// onPrimaryTransactionalWrite failpoint: it applies to retryable
	// writes only (a txnNumber outside a transaction), and has a slot of
	// its own beside failCommand. mongotest fires it once per command,
	// where a real server fires it per statement of the command.
	OnPrimaryTransactionalWrite bool

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

// Set holds the configured failpoints: one failCommand and one
// failGetMoreAfterCursorCheckout, as on a real server. Its zero value
// has none.
type Set struct {
	mu       sync.Mutex
	before   *armed // failCommand
	after    *armed // failGetMoreAfterCursorCheckout
	txnWrite *armed // onPrimaryTransactionalWrite
}

// armed is a configured failpoint and its remaining budget.
type armed struct {
	fp        Spec
	skip      int
	remaining int // failures left; -1 means unlimited
	hits      int // how many commands it failed
}

// Configure arms fp, replacing the failpoint of the same kind (before or
// after cursor checkout).
func (f *Set) Configure(fp Spec) {
	a := &armed{fp: fp, skip: fp.Skip, remaining: fp.Times}
	if fp.Times <= 0 {
		a.remaining = -1
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case fp.AfterCursorCheckout:
		f.after = a
	case fp.OnPrimaryTransactionalWrite:
		f.txnWrite = a
	default:
		f.before = a
	}
}

// OffTxnWrite disables onPrimaryTransactionalWrite and returns how many
// times it fired.
func (f *Set) OffTxnWrite() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	if f.txnWrite != nil {
		n = f.txnWrite.hits
	}
	f.txnWrite = nil
	return n
}

// Off disables one kind of failpoint and returns how many times it fired.
func (f *Set) Off(afterCheckout bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	slot := &f.before
	if afterCheckout {
		slot = &f.after
	}
	n := 0
	if *slot != nil {
		n = (*slot).hits
	}
	*slot = nil
	return n
}

// Clear turns every failpoint off.
func (f *Set) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.before, f.after, f.txnWrite = nil, nil, nil
}

// Action is what a matching failpoint does to a command.
type Action struct {
	err       *codes.Error
	closeConn bool
	blockFor  time.Duration
	// wce and wceLabels are the write concern error to add to the reply
	// of the command, which runs.
	wce       bsoncore.Document
	wceLabels []string
}

// Command describes the command a failpoint is asked about: its name,
// the client's application name, and the session fields that decide
// which error labels a real server adds.
type Command struct {
	Name    string
	AppName string
	// TxnNumber and Autocommit tell whether the command carried a
	// txnNumber and an autocommit field: a retryable write has the first
	// only, a command of a transaction both.
	TxnNumber, Autocommit bool
}

// Before returns the action of a failCommand failpoint for the command,
// or nil.
func (f *Set) Before(cmd Command) *Action {
	if cmd.Name == "configureFailPoint" {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fireBefore(cmd, false)
}

// AfterExecution returns the action of a failCommand failpoint
// configured with AfterExecution for a write that has run, or nil.
func (f *Set) AfterExecution(cmd Command) *Action {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fireBefore(cmd, true)
}

// fireBefore fires the failCommand failpoint, or else the
// onPrimaryTransactionalWrite one, if it matches cmd and its
// AfterExecution is afterExec.
func (f *Set) fireBefore(cmd Command, afterExec bool) *Action {
	slot := &f.before
	a := f.before
	if a == nil || a.fp.AfterExecution != afterExec || !a.fire(cmd.AppName, cmd.Name, true) {
		slot, a = &f.txnWrite, f.txnWrite
		if a == nil || !cmd.TxnNumber || cmd.Autocommit || a.fp.AfterExecution != afterExec || !a.fire(cmd.AppName, cmd.Name, true) {
			return nil
		}
	}
	if a.remaining == 0 {
		*slot = nil
	}
	act := a.action(Labels(cmd, a.fp.ErrorCode, 0))
	if a.fp.WriteConcernError != nil && a.fp.ErrorCode == 0 && !a.fp.CloseConnection {
		act.wce = a.fp.WriteConcernError
		act.wceLabels = a.fp.ErrorLabels
		if act.wceLabels == nil {
			code, _ := a.fp.WriteConcernError.Lookup("code").AsInt32OK()
			act.wceLabels = Labels(cmd, 0, code)
		}
	}
	return act
}

// WriteConcernError returns the write concern error the action adds to
// the reply of a command that runs, with its error labels, or nil.
func (a *Action) WriteConcernError() (bsoncore.Document, []string) {
	if a == nil {
		return nil, nil
	}
	return a.wce, a.wceLabels
}

// Labels returns the error labels a real server (mongod's
// ErrorLabelBuilder) adds to a command that fails with code, or whose
// reply carries a write concern error with wcCode (0: none):
// TransientTransactionError inside a transaction, otherwise
// RetryableWriteError on a retryable write, or on commitTransaction and
// abortTransaction, that failed with a retryable code.
func Labels(cmd Command, code, wcCode int32) []string {
	commitOrAbort := cmd.Name == "commitTransaction" || cmd.Name == "abortTransaction"
	if code != 0 && cmd.TxnNumber && cmd.Autocommit && transientTransactionError(code, wcCode != 0, commitOrAbort) {
		return []string{"TransientTransactionError"}
	}
	if cmd.TxnNumber && (!cmd.Autocommit || commitOrAbort) &&
		(code != 0 && codes.RetryableWrite(code) || wcCode != 0 && codes.RetryableWrite(wcCode)) {
		return []string{"RetryableWriteError"}
	}
	return nil
}

// transientTransactionError is mongod's isTransientTransactionError.
func transientTransactionError(code int32, hasWCE, commitOrAbort bool) bool {
	switch code {
	case codes.WriteConflict, codes.LockTimeout, codes.PreparedTransactionInProgress:
		return true
	case codes.SnapshotTooOld, codes.SnapshotUnavailable, codes.StaleChunkHistory, codes.MigrationConflict:
		return true
	}
	if commitOrAbort {
		return code == codes.NoSuchTransaction && !hasWCE
	}
	return codes.RetryableWrite(code) || code == codes.NoSuchTransaction
}

// AfterCheckout returns the action of failGetMoreAfterCursorCheckout
// for a getMore that has checked out its cursor, or nil. stream tells
// whether the cursor is a change stream, whose resumable errors a real
// server labels ResumableChangeStreamError.
func (f *Set) AfterCheckout(appName, cmd string, stream bool) *Action {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.after
	if a == nil || cmd != "getMore" || !a.fire(appName, cmd, false) {
		return nil
	}
	if a.remaining == 0 {
		f.after = nil
	}
	var labels []string
	if a.fp.ErrorLabels == nil && stream && codes.Resumable(a.fp.ErrorCode) {
		labels = []string{"ResumableChangeStreamError"}
	}
	return a.action(labels)
}

// fire reports whether the failpoint applies to this command now, and
// counts it.
func (a *armed) fire(appName, cmd string, checkCommands bool) bool {
	if a.fp.AppName != "" && a.fp.AppName != appName {
		return false
	}
	if checkCommands && len(a.fp.Commands) > 0 && !slices.Contains(a.fp.Commands, cmd) {
		return false
	}
	if a.skip > 0 {
		a.skip--
		return false
	}
	if a.remaining == 0 {
		return false
	}
	if a.remaining > 0 {
		a.remaining--
	}
	a.hits++
	return true
}

// action builds what the failpoint does; defaultLabels apply when the
// failpoint names none.
func (a *armed) action(defaultLabels []string) *Action {
	act := &Action{closeConn: a.fp.CloseConnection, blockFor: a.fp.BlockFor}
	if a.fp.ErrorCode != 0 {
		labels := a.fp.ErrorLabels
		if labels == nil {
			labels = defaultLabels
		}
		act.err = &codes.Error{
			Code:    a.fp.ErrorCode,
			Message: "Failing command via 'failCommand' failpoint",
			Labels:  slices.Clone(labels),
		}
		if a.fp.AfterCursorCheckout {
			act.err.Message = "Failing command via 'failGetMoreAfterCursorCheckout' failpoint"
		}
	}
	return act
}

// ErrCloseConnection is what Apply returns for a failpoint that closes
// the client's connection instead of replying.
var ErrCloseConnection = errors.New("mongotest: failpoint closes the connection")

// Apply carries out the action: it waits BlockFor (ctx ending first is
// ErrCloseConnection: the connection went away), then returns
// ErrCloseConnection, the configured error (a *codes.Error), or nil when
// the command should run normally.
func (a *Action) Apply(ctx context.Context) error {
	if a.blockFor > 0 {
		t := time.NewTimer(a.blockFor)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ErrCloseConnection
		}
	}
	if a.closeConn {
		return ErrCloseConnection
	}
	if a.err != nil {
		return a.err
	}
	return nil
}
