package unified

import "path"

// unsupported says why the runner skips a test it can tell in advance
// it cannot run through the Go driver, or "" when there is none.
func unsupported(f *File, tc *Test) string {
	for i := range tc.Operations {
		if why, ok := driverLacks[tc.Operations[i].Name]; ok {
			return "operation " + tc.Operations[i].Name + ": " + why
		}
	}
	for _, d := range driverDeviations {
		if ok, _ := path.Match(d.file, f.Description); !ok {
			continue
		}
		if ok, _ := path.Match(d.test, tc.Description); d.test == "" || ok {
			return "Go driver v2.10.0: " + d.reason
		}
	}
	return ""
}

// driverDeviations are the spec tests whose expectations the Go driver
// (v2.10.0) itself does not meet, whatever the server does. file and
// test are path.Match patterns for the spec file's and the test's
// descriptions (test "" for every test of the file).
var driverDeviations = []struct{ file, test, reason string }{
	{"bypassDocumentValidation", "* passes bypassDocumentValidation: false",
		"omits bypassDocumentValidation: false from the command (the spec expects it sent)"},
	{"*-hint-unacknowledged", "Unacknowledged *",
		"refuses hint with an unacknowledged write on the client, before sending it"},
	{"gridfs-download", "",
		"GridFS sends the files filter as {_id: {$eq: id}}, the spec expects {_id: id}"},
	{"gridfs-download-serverErrors", "",
		"GridFS sends the files filter as {_id: {$eq: id}}, the spec expects {_id: id}"},
	{"transaction-options", "transaction options inherited from client",
		"keeps the wtimeout: 10000 of a commit's write concern on the next transaction's abortTransaction"},
	{"transaction-options", "readConcern local in defaultTransactionOptions",
		"keeps the wtimeout: 10000 of a commit's write concern on the next transaction's abortTransaction"},
	{"transaction-options", "readPreference inherited from *",
		"selects a server by the transaction's secondary read preference (a server selection timeout on one node) instead of refusing it"},
	{"transaction-options", "startTransaction overrides readPreference",
		"selects a server by the transaction's secondary read preference (a server selection timeout on one node) instead of refusing it"},
	{"find", "Find with batchSize equal to limit",
		"sends batchSize equal to the limit (the spec expects limit+1, so that the server closes the cursor)"},
	{"insertMany", "InsertMany continue-on-error behavior with unordered *",
		"InsertMany returns no write counts with its error (the spec expects a bulk write result)"},
	{"read-pref", "secondary readPreference",
		"selects a server by the transaction's secondary read preference (a server selection timeout on one node) instead of refusing it"},
}
