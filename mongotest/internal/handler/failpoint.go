package handler

import (
	"time"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/failpoint"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// handleConfigureFailPoint is a real server's test command
//
//	{configureFailPoint: "failCommand" | "failGetMoreAfterCursorCheckout",
//	 mode: "alwaysOn" | "off" | {times: n} | {skip: n},
//	 data: {failCommands, errorCode, errorLabels, writeConcernError,
//	        closeConnection, blockConnection, blockTimeMS, appName}}
//
// run on admin. The reply's count is how often the previous configuration
// fired.
func handleConfigureFailPoint(f *failpoint.Set, r *request) (bsoncore.Document, error) {
	if r.db != "admin" {
		return nil, codes.Errorf(codes.Unauthorized, "configureFailPoint may only be run against the admin database.")
	}
	name, ok := r.arg(r.name).StringValueOK()
	if !ok {
		return nil, codes.Errorf(codes.TypeMismatch, "configureFailPoint: the failpoint name must be a string")
	}
	var fp failpoint.Spec
	switch name {
	case "failCommand":
	case "failGetMoreAfterCursorCheckout":
		fp.AfterCursorCheckout = true
	case "onPrimaryTransactionalWrite":
		fp.OnPrimaryTransactionalWrite = true
	default:
		return nil, codes.Errorf(codes.BadValue, "mongotest supports the failpoints failCommand, failGetMoreAfterCursorCheckout and onPrimaryTransactionalWrite, not %q", name)
	}
	on, err := parseFailPointMode(r.arg("mode"), &fp)
	if err != nil {
		return nil, err
	}
	off := func() int {
		if fp.OnPrimaryTransactionalWrite {
			return f.OffTxnWrite()
		}
		return f.Off(fp.AfterCursorCheckout)
	}
	if !on {
		return marshal(bson.D{{Key: "count", Value: int32(off())}})
	}
	if fp.OnPrimaryTransactionalWrite {
		if err := parseTxnWriteData(r.arg("data"), &fp); err != nil {
			return nil, err
		}
		n := off()
		f.Configure(fp)
		return marshal(bson.D{{Key: "count", Value: int32(n)}})
	}
	if v := r.arg("data"); v.Type != 0 {
		data, ok := v.DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.TypeMismatch, "configureFailPoint: data must be an object")
		}
		if err := parseFailPointData(data, &fp); err != nil {
			return nil, err
		}
	}
	if !fp.AfterCursorCheckout && fp.Commands == nil {
		return nil, codes.Errorf(codes.InvalidOptions, "failCommand failpoint requires data.failCommands: the names of the commands to fail")
	}
	n := f.Off(fp.AfterCursorCheckout)
	f.Configure(fp)
	return marshal(bson.D{{Key: "count", Value: int32(n)}})
}

// parseFailPointMode reads mode into fp; it returns false for "off".
func parseFailPointMode(v bsoncore.Value, fp *failpoint.Spec) (bool, error) {
	if str, ok := v.StringValueOK(); ok {
		switch str {
		case "alwaysOn":
			return true, nil
		case "off":
			return false, nil
		}
		return false, codes.Errorf(codes.BadValue, "unknown failpoint mode %q: expected alwaysOn, off, {times: n} or {skip: n}", str)
	}
	d, ok := v.DocumentOK()
	if !ok {
		return false, codes.Errorf(codes.TypeMismatch, "failpoint mode must be a string or an object, not %s", v.Type)
	}
	// As on a real server, times wins over skip when both are given (the
	// Go driver's tests send both); activationProbability is not
	// implemented.
	count := func(key string) (int, error) {
		n, ok := bsonutil.AsInt64(d.Lookup(key))
		if !ok || n < 0 || n > 1<<31 {
			return 0, codes.Errorf(codes.BadValue, "failpoint mode %s must be a non-negative integer", key)
		}
		return int(n), nil
	}
	switch {
	case d.Lookup("times").Type != 0:
		n, err := count("times")
		fp.Times = n
		return n > 0, err
	case d.Lookup("skip").Type != 0:
		n, err := count("skip")
		fp.Skip = n
		return true, err
	case d.Lookup("activationProbability").Type != 0:
		return false, codes.Errorf(codes.NotImplemented, "mongotest does not support failpoint mode activationProbability")
	}
	return false, codes.Errorf(codes.BadValue, "invalid failpoint mode object: expected times or skip")
}

// parseTxnWriteData reads the data of onPrimaryTransactionalWrite, which
// fires on retryable writes: {closeConnection (default true),
// failBeforeCommitExceptionCode}. Without the code the write is applied
// and its reply lost with the connection; with it the write is not
// applied and the command fails with the code (or, with the connection
// closed, with a network error).
func parseTxnWriteData(v bsoncore.Value, fp *failpoint.Spec) error {
	fp.Commands = []string{"insert", "update", "delete", "findAndModify"}
	fp.CloseConnection = true
	data, _ := v.DocumentOK()
	if v.Type != 0 && data == nil {
		return codes.Errorf(codes.TypeMismatch, "configureFailPoint: data must be an object")
	}
	if b, ok := data.Lookup("closeConnection").BooleanOK(); ok {
		fp.CloseConnection = b
	}
	if c := data.Lookup("failBeforeCommitExceptionCode"); c.Type != 0 {
		n, ok := bsonutil.AsInt64(c)
		if !ok || n == 0 || n < -(1<<31) || n >= 1<<31 {
			return codes.Errorf(codes.TypeMismatch, "failpoint data.failBeforeCommitExceptionCode must be a non-zero 32-bit integer")
		}
		fp.ErrorCode = int32(n)
		return nil
	}
	fp.AfterExecution = true
	return nil
}

// parseFailPointData reads the data document of failCommand.
func parseFailPointData(data bsoncore.Document, fp *failpoint.Spec) error {
	elems, err := data.Elements()
	if err != nil {
		return codes.Errorf(codes.FailedToParse, "configureFailPoint data: %v", err)
	}
	block := false
	var blockMS int64
	for _, el := range elems {
		k, v := el.Key(), el.Value()
		switch k {
		case "failCommands":
			names, err := stringArray(v, k)
			if err != nil {
				return err
			}
			fp.Commands = names
		case "errorLabels":
			labels, err := stringArray(v, k)
			if err != nil {
				return err
			}
			fp.ErrorLabels = labels
		case "errorCode":
			n, ok := bsonutil.AsInt64(v)
			if !ok || n < -(1<<31) || n >= 1<<31 {
				return codes.Errorf(codes.TypeMismatch, "failpoint data.errorCode must be a 32-bit integer")
			}
			fp.ErrorCode = int32(n)
		case "closeConnection":
			b, ok := v.BooleanOK()
			if !ok {
				return codes.Errorf(codes.TypeMismatch, "failpoint data.closeConnection must be a boolean")
			}
			fp.CloseConnection = b
		case "blockConnection":
			b, ok := v.BooleanOK()
			if !ok {
				return codes.Errorf(codes.TypeMismatch, "failpoint data.blockConnection must be a boolean")
			}
			block = b
		case "blockTimeMS":
			n, ok := bsonutil.AsInt64(v)
			if !ok || n < 0 {
				return codes.Errorf(codes.TypeMismatch, "failpoint data.blockTimeMS must be a non-negative integer")
			}
			blockMS = n
		case "appName":
			str, ok := v.StringValueOK()
			if !ok {
				return codes.Errorf(codes.TypeMismatch, "failpoint data.appName must be a string")
			}
			fp.AppName = str
		case "writeConcernError":
			d, ok := v.DocumentOK()
			if !ok {
				return codes.Errorf(codes.TypeMismatch, "failpoint data.writeConcernError must be an object")
			}
			if _, ok := d.Lookup("code").AsInt32OK(); !ok {
				return codes.Errorf(codes.TypeMismatch, "failpoint data.writeConcernError must have an integer code")
			}
			fp.WriteConcernError = d
		case "threadName", "namespace", "errorExtraInfo":
			// mongod uses these; mongotest does not implement them.
			return codes.Errorf(codes.NotImplemented, "mongotest does not support failpoint data.%s", k)
		case "failInternalCommands":
			// mongotest runs no internal commands: nothing to fail.
		default:
			// mongod reads only the fields it knows and ignores the rest
			// (the Node.js driver's tests send errmsg).
		}
	}
	if block {
		if blockMS == 0 {
			return codes.Errorf(codes.InvalidOptions, "failpoint data.blockConnection requires blockTimeMS")
		}
		fp.BlockFor = time.Duration(blockMS) * time.Millisecond
	}
	return nil
}

func stringArray(v bsoncore.Value, field string) ([]string, error) {
	arr, ok := v.ArrayOK()
	if !ok {
		return nil, codes.Errorf(codes.TypeMismatch, "failpoint data.%s must be an array of strings", field)
	}
	vals, err := arr.Values()
	if err != nil {
		return nil, codes.Errorf(codes.FailedToParse, "failpoint data.%s: %v", field, err)
	}
	out := make([]string, 0, len(vals))
	for _, x := range vals {
		str, ok := x.StringValueOK()
		if !ok {
			return nil, codes.Errorf(codes.TypeMismatch, "failpoint data.%s must be an array of strings", field)
		}
		out = append(out, str)
	}
	return out, nil
}
