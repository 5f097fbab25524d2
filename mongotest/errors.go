package mongotest

import "github.com/go-changestream/changestream/mongotest/internal/codes"

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
	return (&codes.Error{Code: e.Code, CodeName: e.Name, Message: e.Message}).Error()
}
