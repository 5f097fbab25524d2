package mongotest

import "fmt"

// Server error codes used by mongotest, with the names a real server gives them.
const (
	codeInternalError                   = 1
	codeBadValue                        = 2
	codeNoSuchKey                       = 4
	codeFailedToParse                   = 9
	codeTypeMismatch                    = 14
	codeIllegalOperation                = 20
	codeNamespaceNotFound               = 26
	codeIndexNotFound                   = 27
	codeCursorNotFound                  = 43
	codeNamespaceExists                 = 48
	codeMaxTimeMSExpired                = 50
	codeCommandNotFound                 = 59
	codeInvalidOptions                  = 72
	codeInvalidNamespace                = 73
	codeIndexOptionsConflict            = 85
	codeIndexKeySpecsConflict           = 86
	codeHostUnreachable                 = 6
	codeHostNotFound                    = 7
	codeNetworkTimeout                  = 89
	codeShutdownInProgress              = 91
	codeCappedPositionLost              = 136
	codeInterrupted                     = 11601
	codeInterruptedAtShutdown           = 11600
	codeNotWritablePrimary              = 10107
	codeNotPrimaryNoSecondaryOk         = 13435
	codeNotPrimaryOrSecondary           = 13436
	codePrimarySteppedDown              = 189
	codeInterruptedDueToReplStateChange = 11602
	codeStaleShardVersion               = 63
	codeStaleEpoch                      = 150
	codeStaleConfig                     = 13388
	codeRetryChangeStream               = 234
	codeFailedToSatisfyReadPreference   = 133
	codeInvalidResumeToken              = 260
	codeChangeStreamFatalError          = 280
	codeChangeStreamHistoryLost         = 286
	codeBSONObjectTooLarge              = 10334
	codeDuplicateKey                    = 11000
	codeLocation40324                   = 40324
	codeLocation40573                   = 40573
	codeNoMatchingDocument              = 47
	codeUnauthorized                    = 13
	codeOperationFailed                 = 96
	codeInvalidPipelineOperator         = 168
	codeQueryFeatureNotAllowed          = 224
	codeNotImplemented                  = 238
	codeConflictingUpdateOperators      = 40
	codeImmutableField                  = 66
	codeUnknownError                    = 8
)

// codeNames maps codes to the codeName a real server reports.
var codeNames = map[int32]string{
	codeInternalError:                   "InternalError",
	codeBadValue:                        "BadValue",
	codeNoSuchKey:                       "NoSuchKey",
	codeFailedToParse:                   "FailedToParse",
	codeTypeMismatch:                    "TypeMismatch",
	codeIllegalOperation:                "IllegalOperation",
	codeNamespaceNotFound:               "NamespaceNotFound",
	codeIndexNotFound:                   "IndexNotFound",
	codeCursorNotFound:                  "CursorNotFound",
	codeNamespaceExists:                 "NamespaceExists",
	codeMaxTimeMSExpired:                "MaxTimeMSExpired",
	codeCommandNotFound:                 "CommandNotFound",
	codeInvalidOptions:                  "InvalidOptions",
	codeInvalidNamespace:                "InvalidNamespace",
	codeIndexOptionsConflict:            "IndexOptionsConflict",
	codeIndexKeySpecsConflict:           "IndexKeySpecsConflict",
	codeHostUnreachable:                 "HostUnreachable",
	codeHostNotFound:                    "HostNotFound",
	codeNetworkTimeout:                  "NetworkTimeout",
	codeShutdownInProgress:              "ShutdownInProgress",
	codeCappedPositionLost:              "CappedPositionLost",
	codeInterrupted:                     "Interrupted",
	codeInterruptedAtShutdown:           "InterruptedAtShutdown",
	codeNotWritablePrimary:              "NotWritablePrimary",
	codeNotPrimaryNoSecondaryOk:         "NotPrimaryNoSecondaryOk",
	codeNotPrimaryOrSecondary:           "NotPrimaryOrSecondary",
	codePrimarySteppedDown:              "PrimarySteppedDown",
	codeInterruptedDueToReplStateChange: "InterruptedDueToReplStateChange",
	codeStaleShardVersion:               "StaleShardVersion",
	codeStaleEpoch:                      "StaleEpoch",
	codeStaleConfig:                     "StaleConfig",
	codeRetryChangeStream:               "RetryChangeStream",
	codeFailedToSatisfyReadPreference:   "FailedToSatisfyReadPreference",
	codeInvalidResumeToken:              "InvalidResumeToken",
	codeChangeStreamFatalError:          "ChangeStreamFatalError",
	codeChangeStreamHistoryLost:         "ChangeStreamHistoryLost",
	codeBSONObjectTooLarge:              "BSONObjectTooLarge",
	codeDuplicateKey:                    "DuplicateKey",
	codeNoMatchingDocument:              "NoMatchingDocument",
	codeUnauthorized:                    "Unauthorized",
	codeOperationFailed:                 "OperationFailed",
	codeInvalidPipelineOperator:         "InvalidPipelineOperator",
	codeQueryFeatureNotAllowed:          "QueryFeatureNotAllowed",
	codeNotImplemented:                  "NotImplemented",
	codeConflictingUpdateOperators:      "ConflictingUpdateOperators",
	codeImmutableField:                  "ImmutableField",
	codeUnknownError:                    "UnknownError",
}

// resumableCodes are the codes a real 4.4+ server labels with
// ResumableChangeStreamError when they fail a change stream getMore.
var resumableCodes = map[int32]bool{
	codeHostUnreachable:                 true,
	codeHostNotFound:                    true,
	codeNetworkTimeout:                  true,
	codeShutdownInProgress:              true,
	codePrimarySteppedDown:              true,
	codeExceededTimeLimit:               true,
	codeSocketException:                 true,
	codeNotWritablePrimary:              true,
	codeInterruptedAtShutdown:           true,
	codeInterruptedDueToReplStateChange: true,
	codeNotPrimaryNoSecondaryOk:         true,
	codeNotPrimaryOrSecondary:           true,
	codeStaleShardVersion:               true,
	codeStaleEpoch:                      true,
	codeStaleConfig:                     true,
	codeRetryChangeStream:               true,
	codeFailedToSatisfyReadPreference:   true,
	codeCursorNotFound:                  true,
}

const (
	codeExceededTimeLimit = 262
	codeSocketException   = 9001
)

func init() {
	codeNames[codeExceededTimeLimit] = "ExceededTimeLimit"
	codeNames[codeSocketException] = "SocketException"
}

// notPrimaryCodes are the errors after which the driver marks a server
// Unknown; their replies carry topologyVersion.
var notPrimaryCodes = map[int32]bool{
	codeNotWritablePrimary:              true,
	codeNotPrimaryNoSecondaryOk:         true,
	codeNotPrimaryOrSecondary:           true,
	codePrimarySteppedDown:              true,
	codeInterruptedDueToReplStateChange: true,
	codeShutdownInProgress:              true,
	codeInterruptedAtShutdown:           true,
}

// CommandError is a server error reply: {ok: 0, errmsg, code, codeName, errorLabels}.
type CommandError struct {
	// Code is the server error code, such as 286 for ChangeStreamHistoryLost.
	Code int32
	// Name is the codeName; when empty it is derived from Code.
	Name string
	// Message is the errmsg.
	Message string
	// Labels are the errorLabels, such as ResumableChangeStreamError.
	Labels []string
}

// Error returns the code name and the message.
func (e *CommandError) Error() string {
	return fmt.Sprintf("(%s) %s", e.codeName(), e.Message)
}

func (e *CommandError) codeName() string {
	if e.Name != "" {
		return e.Name
	}
	if n, ok := codeNames[e.Code]; ok {
		return n
	}
	return fmt.Sprintf("Location%d", e.Code)
}

func errorf(code int32, format string, args ...any) *CommandError {
	return &CommandError{Code: code, Message: fmt.Sprintf(format, args...)}
}
