// Package codes is the one table of the server error codes mongotest
// replies with, the names a real server gives them, and the error type
// its handlers return.
package codes

import "fmt"

// Server error codes with a name, as a real server (8.2) reports them.
const (
	InternalError                      = 1
	BadValue                           = 2
	NoSuchKey                          = 4
	HostUnreachable                    = 6
	HostNotFound                       = 7
	UnknownError                       = 8
	FailedToParse                      = 9
	Unauthorized                       = 13
	TypeMismatch                       = 14
	IllegalOperation                   = 20
	InvalidBSON                        = 22
	LockTimeout                        = 24
	NamespaceNotFound                  = 26
	IndexNotFound                      = 27
	PathNotViable                      = 28
	ConflictingUpdateOperators         = 40
	CursorNotFound                     = 43
	NoMatchingDocument                 = 47
	NamespaceExists                    = 48
	MaxTimeMSExpired                   = 50
	DollarPrefixedFieldName            = 52
	InvalidIdField                     = 53
	EmptyFieldName                     = 56
	CommandNotFound                    = 59
	StaleShardVersion                  = 63
	WriteConcernTimeout                = 64
	ImmutableField                     = 66
	CannotCreateIndex                  = 67
	InvalidOptions                     = 72
	InvalidNamespace                   = 73
	UnknownReplWriteConcern            = 79
	IndexOptionsConflict               = 85
	IndexKeySpecsConflict              = 86
	NetworkTimeout                     = 89
	ShutdownInProgress                 = 91
	NotSecondary                       = 95
	OperationFailed                    = 96
	UnsatisfiableWriteConcern          = 100
	WriteConflict                      = 112
	ConflictingOperationInProgress     = 117
	FailedToSatisfyReadPreference      = 133
	CappedPositionLost                 = 136
	StaleEpoch                         = 150
	CommandNotSupportedOnView          = 166
	InvalidPipelineOperator            = 168
	PrimarySteppedDown                 = 189
	InvalidIndexSpecificationOption    = 197
	NoSuchSession                      = 206
	IllegalOpMsgFlag                   = 223
	QueryFeatureNotAllowed             = 224
	TransactionTooOld                  = 225
	RetryChangeStream                  = 234
	CursorKilled                       = 237
	NotImplemented                     = 238
	SnapshotTooOld                     = 239
	SnapshotUnavailable                = 246
	StaleChunkHistory                  = 250
	NoSuchTransaction                  = 251
	TransactionCommitted               = 256
	InvalidResumeToken                 = 260
	ExceededTimeLimit                  = 262
	OperationNotSupportedInTransaction = 263
	PreparedTransactionInProgress      = 267
	MigrationConflict                  = 272
	ChangeStreamFatalError             = 280
	ChangeStreamHistoryLost            = 286
	UnsupportedOpQueryCommand          = 352
	SocketException                    = 9001
	NotWritablePrimary                 = 10107
	BSONObjectTooLarge                 = 10334
	DuplicateKey                       = 11000
	InterruptedAtShutdown              = 11600
	Interrupted                        = 11601
	InterruptedDueToReplStateChange    = 11602
	StaleConfig                        = 13388
	NotPrimaryNoSecondaryOk            = 13435
	NotPrimaryOrSecondary              = 13436
	SearchNotEnabled                   = 31082
)

// Codes a real server raises without a name (reported as "Location<code>").
const (
	Location15947   = 15947 // $group argument is not an object
	Location15952   = 15952 // unknown group operator
	Location15955   = 15955 // $group without _id
	Location15957   = 15957 // $limit not a number
	Location15958   = 15958 // $limit 0
	Location15959   = 15959 // $match argument is not an object
	Location15969   = 15969 // $project argument is not an object
	Location15973   = 15973 // $sort argument is not an object
	Location15974   = 15974
	Location15976   = 15976 // $sort without keys
	Location15983   = 15983 // an operator object with more than one field
	Location16410   = 16410 // field path starts with '$'
	Location16412   = 16412 // '.' in a field name of an expression object
	Location16872   = 16872 // "$" alone
	Location13113   = 13113 // $merge whenNotMatched: fail
	Location16020   = 16020 // wrong number of expression arguments
	Location17276   = 17276 // undefined variable
	Location31002   = 31002 // $unset argument of the wrong type
	Location31119   = 31119 // $unset with an empty array
	Location31120   = 31120 // $unset array with a non-string
	Location31250   = 31250 // path collision
	Location31252   = 31252 // expression in an exclusion projection
	Location31253   = 31253 // inclusion in an exclusion projection
	Location31254   = 31254 // exclusion in an inclusion projection
	Location40156   = 40156 // $count argument is not a string
	Location40157   = 40157 // $count empty
	Location40158   = 40158 // $count $-prefixed
	Location40160   = 40160 // $count with '.'
	Location40228   = 40228 // newRoot does not evaluate to a document
	Location40229   = 40229 // $replaceRoot argument is not an object
	Location40231   = 40231 // $replaceRoot without newRoot
	Location40234   = 40234 // $group field is not an accumulator object
	Location40235   = 40235 // $group field name with '.'
	Location40236   = 40236 // $group field name starting with '$'
	Location40238   = 40238 // $group field with several accumulators
	Location40272   = 40272 // $addFields/$set argument is not an object
	Location40323   = 40323 // a stage document without exactly one field
	Location40324   = 40324
	Location40352   = 40352 // empty field path component
	Location40415   = 40415
	Location40430   = 40430 // two body sections
	Location40431   = 40431 // a field both in the body and a sequence
	Location40432   = 40432 // unknown section kind
	Location40573   = 40573
	Location40587   = 40587 // no body section
	Location40602   = 40602 // $changeStream not first
	Location40674   = 40674
	Location51272   = 51272   // empty projection
	Location5107200 = 5107200 // bad $skip
	Location5107201 = 5107201 // bad $limit
	Location5739101 = 5739101 // OP_QUERY on a collection
	Location7182802 = 7182802
)

// names maps codes to the codeName a real server reports.
var names = map[int32]string{
	InternalError:                      "InternalError",
	BadValue:                           "BadValue",
	NoSuchKey:                          "NoSuchKey",
	HostUnreachable:                    "HostUnreachable",
	HostNotFound:                       "HostNotFound",
	UnknownError:                       "UnknownError",
	FailedToParse:                      "FailedToParse",
	Unauthorized:                       "Unauthorized",
	TypeMismatch:                       "TypeMismatch",
	IllegalOperation:                   "IllegalOperation",
	InvalidBSON:                        "InvalidBSON",
	NamespaceNotFound:                  "NamespaceNotFound",
	IndexNotFound:                      "IndexNotFound",
	PathNotViable:                      "PathNotViable",
	ConflictingUpdateOperators:         "ConflictingUpdateOperators",
	CursorNotFound:                     "CursorNotFound",
	NoMatchingDocument:                 "NoMatchingDocument",
	NamespaceExists:                    "NamespaceExists",
	MaxTimeMSExpired:                   "MaxTimeMSExpired",
	DollarPrefixedFieldName:            "DollarPrefixedFieldName",
	InvalidIdField:                     "InvalidIdField",
	EmptyFieldName:                     "EmptyFieldName",
	CommandNotSupportedOnView:          "CommandNotSupportedOnView",
	CommandNotFound:                    "CommandNotFound",
	StaleShardVersion:                  "StaleShardVersion",
	ImmutableField:                     "ImmutableField",
	CannotCreateIndex:                  "CannotCreateIndex",
	InvalidOptions:                     "InvalidOptions",
	InvalidNamespace:                   "InvalidNamespace",
	IndexOptionsConflict:               "IndexOptionsConflict",
	IndexKeySpecsConflict:              "IndexKeySpecsConflict",
	NetworkTimeout:                     "NetworkTimeout",
	ShutdownInProgress:                 "ShutdownInProgress",
	OperationFailed:                    "OperationFailed",
	FailedToSatisfyReadPreference:      "FailedToSatisfyReadPreference",
	CappedPositionLost:                 "CappedPositionLost",
	StaleEpoch:                         "StaleEpoch",
	InvalidPipelineOperator:            "InvalidPipelineOperator",
	PrimarySteppedDown:                 "PrimarySteppedDown",
	InvalidIndexSpecificationOption:    "InvalidIndexSpecificationOption",
	IllegalOpMsgFlag:                   "IllegalOpMsgFlag",
	QueryFeatureNotAllowed:             "QueryFeatureNotAllowed",
	TransactionTooOld:                  "TransactionTooOld",
	RetryChangeStream:                  "RetryChangeStream",
	CursorKilled:                       "CursorKilled",
	NotImplemented:                     "NotImplemented",
	InvalidResumeToken:                 "InvalidResumeToken",
	ExceededTimeLimit:                  "ExceededTimeLimit",
	ChangeStreamFatalError:             "ChangeStreamFatalError",
	ChangeStreamHistoryLost:            "ChangeStreamHistoryLost",
	UnsupportedOpQueryCommand:          "UnsupportedOpQueryCommand",
	SocketException:                    "SocketException",
	NotWritablePrimary:                 "NotWritablePrimary",
	BSONObjectTooLarge:                 "BSONObjectTooLarge",
	DuplicateKey:                       "DuplicateKey",
	InterruptedAtShutdown:              "InterruptedAtShutdown",
	Interrupted:                        "Interrupted",
	InterruptedDueToReplStateChange:    "InterruptedDueToReplStateChange",
	StaleConfig:                        "StaleConfig",
	NotPrimaryNoSecondaryOk:            "NotPrimaryNoSecondaryOk",
	NotPrimaryOrSecondary:              "NotPrimaryOrSecondary",
	LockTimeout:                        "LockTimeout",
	WriteConcernTimeout:                "WriteConcernTimeout",
	UnknownReplWriteConcern:            "UnknownReplWriteConcern",
	NotSecondary:                       "NotSecondary",
	UnsatisfiableWriteConcern:          "UnsatisfiableWriteConcern",
	WriteConflict:                      "WriteConflict",
	ConflictingOperationInProgress:     "ConflictingOperationInProgress",
	NoSuchSession:                      "NoSuchSession",
	SnapshotTooOld:                     "SnapshotTooOld",
	SnapshotUnavailable:                "SnapshotUnavailable",
	StaleChunkHistory:                  "StaleChunkHistory",
	NoSuchTransaction:                  "NoSuchTransaction",
	TransactionCommitted:               "TransactionCommitted",
	OperationNotSupportedInTransaction: "OperationNotSupportedInTransaction",
	PreparedTransactionInProgress:      "PreparedTransactionInProgress",
	MigrationConflict:                  "MigrationConflict",
	SearchNotEnabled:                   "SearchNotEnabled",
	// Codes a failpoint may name that mongotest itself never raises.
	134: "ReadConcernMajorityNotAvailableYet",
	216: "ElectionInProgress",
}

// Name returns the codeName of code: its name in the table, or
// "Location<code>" for a code without one, as a real server reports it.
func Name(code int32) string {
	if n, ok := names[code]; ok {
		return n
	}
	return fmt.Sprintf("Location%d", code)
}

// Known reports whether code has a name in the table.
func Known(code int32) bool {
	_, ok := names[code]
	return ok
}

// resumable are the codes a real 4.4+ server labels with
// ResumableChangeStreamError when they fail a change stream getMore.
var resumable = map[int32]bool{
	HostUnreachable:                 true,
	HostNotFound:                    true,
	NetworkTimeout:                  true,
	ShutdownInProgress:              true,
	PrimarySteppedDown:              true,
	ExceededTimeLimit:               true,
	SocketException:                 true,
	NotWritablePrimary:              true,
	InterruptedAtShutdown:           true,
	InterruptedDueToReplStateChange: true,
	NotPrimaryNoSecondaryOk:         true,
	NotPrimaryOrSecondary:           true,
	StaleShardVersion:               true,
	StaleEpoch:                      true,
	StaleConfig:                     true,
	RetryChangeStream:               true,
	FailedToSatisfyReadPreference:   true,
	CursorNotFound:                  true,
}

// Resumable reports whether a real server labels a change-stream getMore
// failing with code ResumableChangeStreamError.
func Resumable(code int32) bool { return resumable[code] }

// notPrimary are the errors after which the driver marks a server
// Unknown; their replies carry topologyVersion.
var notPrimary = map[int32]bool{
	NotWritablePrimary:              true,
	NotPrimaryNoSecondaryOk:         true,
	NotPrimaryOrSecondary:           true,
	PrimarySteppedDown:              true,
	InterruptedDueToReplStateChange: true,
	ShutdownInProgress:              true,
	InterruptedAtShutdown:           true,
}

// NotPrimary reports whether an error reply with code carries
// topologyVersion (the driver then marks the server Unknown).
func NotPrimary(code int32) bool { return notPrimary[code] }

// retryableWrite are the codes a real server labels RetryableWriteError
// when they fail a retryable write.
var retryableWrite = map[int32]bool{
	HostUnreachable: true, HostNotFound: true, NetworkTimeout: true, ShutdownInProgress: true,
	134: true, PrimarySteppedDown: true, ExceededTimeLimit: true, SocketException: true,
	NotWritablePrimary: true, InterruptedAtShutdown: true, InterruptedDueToReplStateChange: true,
	NotPrimaryNoSecondaryOk: true, NotPrimaryOrSecondary: true,
}

// RetryableWrite reports whether a real server labels a retryable write
// failing with code RetryableWriteError.
func RetryableWrite(code int32) bool { return retryableWrite[code] }

// Error is a server error reply: {ok: 0, errmsg, code, codeName,
// errorLabels}. Handlers return it; the package mongotest's CommandError
// documents the same shape for users.
type Error struct {
	// Code is the server error code, such as 286 for ChangeStreamHistoryLost.
	Code int32
	// CodeName is the codeName; when empty it is derived from Code.
	CodeName string
	// Message is the errmsg.
	Message string
	// Labels are the errorLabels, such as ResumableChangeStreamError.
	Labels []string
}

// Error returns the code name and the message.
func (e *Error) Error() string {
	return fmt.Sprintf("(%s) %s", e.Name(), e.Message)
}

// Name returns the codeName the reply carries.
func (e *Error) Name() string {
	if e.CodeName != "" {
		return e.CodeName
	}
	return Name(e.Code)
}

// Errorf returns an error with code and a formatted message.
func Errorf(code int32, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// As returns err as an *Error: itself when it is one, an InternalError
// with its text otherwise.
func As(err error) *Error {
	if ce, ok := err.(*Error); ok {
		return ce
	}
	return &Error{Code: InternalError, Message: err.Error()}
}
