// Package unified runs MongoDB unified-test-format spec files (the format
// of github.com/mongodb/specifications, source/unified-test-format)
// through the official Go driver against a server given by its URI.
//
// It implements the part of the format that the change-stream, CRUD,
// transactions, convenient-transactions, retryable-reads and -writes,
// sessions, collection- and index-management and run-command spec tests
// use: runOnRequirements; client (with command and connection-pool
// event observation), database, collection, session and GridFS bucket
// entities; initialData and outcome; the collection, database, client,
// session (startTransaction, commitTransaction, abortTransaction,
// withTransaction), cursor and testRunner operations (failPoint,
// targetedFailPoint, the session, collection and index assertions);
// expectError (codes, labels, partial results, errorResponse),
// expectResult, saveResultAsEntity and expectEvents; and the matching
// operators $$exists, $$unsetOrMatches, $$type, $$matchesEntity,
// $$matchesHexBytes, $$sessionLsid, $$lte, $$matchAsDocument and
// $$matchAsRoot.
//
// A test that needs what the Go driver has no API for, or whose
// expectations the driver itself does not meet, is skipped with the
// reason; an argument or operation the runner does not implement fails
// the test.
package unified

import (
	"fmt"
	"os"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// File is one parsed spec file. Each field holds the format's key
// named in its bson tag, as the unified test format defines it.
type File struct {
	Description    string        `bson:"description"`
	SchemaVersion  string        `bson:"schemaVersion"`
	RunOn          []Requirement `bson:"runOnRequirements"`
	CreateEntities []bson.Raw    `bson:"createEntities"`
	InitialData    []CollData    `bson:"initialData"`
	Tests          []Test        `bson:"tests"`
}

// Requirement is one runOnRequirements entry. Each field holds the format's key
// named in its bson tag, as the unified test format defines it.
type Requirement struct {
	MinServerVersion string   `bson:"minServerVersion"`
	MaxServerVersion string   `bson:"maxServerVersion"`
	Topologies       []string `bson:"topologies"`
	Serverless       string   `bson:"serverless"`
	Auth             *bool    `bson:"auth"`
	ServerParameters bson.Raw `bson:"serverParameters"`
	CSFLE            *bool    `bson:"csfle"`
}

// CollData is an initialData (or outcome) entry. Each field holds the format's key
// named in its bson tag, as the unified test format defines it.
type CollData struct {
	CollectionName string     `bson:"collectionName"`
	DatabaseName   string     `bson:"databaseName"`
	CreateOptions  bson.Raw   `bson:"createOptions"`
	Documents      []bson.Raw `bson:"documents"`
}

// Test is one test of a file. Each field holds the format's key
// named in its bson tag, as the unified test format defines it.
type Test struct {
	Description  string           `bson:"description"`
	RunOn        []Requirement    `bson:"runOnRequirements"`
	SkipReason   string           `bson:"skipReason"`
	Operations   []Operation      `bson:"operations"`
	ExpectEvents []ExpectedEvents `bson:"expectEvents"`
	Outcome      []CollData       `bson:"outcome"`
}

// Operation is one step of a test. Each field holds the format's key
// named in its bson tag, as the unified test format defines it.
type Operation struct {
	Name                 string        `bson:"name"`
	Object               string        `bson:"object"`
	Arguments            bson.Raw      `bson:"arguments"`
	ExpectError          *ExpectError  `bson:"expectError"`
	ExpectResult         bson.RawValue `bson:"expectResult"`
	SaveResultAsEntity   string        `bson:"saveResultAsEntity"`
	IgnoreResultAndError bool          `bson:"ignoreResultAndError"`
}

// ExpectError is what an operation's error must look like. Each field holds the format's key
// named in its bson tag, as the unified test format defines it.
type ExpectError struct {
	IsError            *bool         `bson:"isError"`
	IsClientError      *bool         `bson:"isClientError"`
	IsTimeoutError     *bool         `bson:"isTimeoutError"`
	ErrorContains      string        `bson:"errorContains"`
	ErrorCode          *int32        `bson:"errorCode"`
	ErrorCodeName      string        `bson:"errorCodeName"`
	ErrorLabelsContain []string      `bson:"errorLabelsContain"`
	ErrorLabelsOmit    []string      `bson:"errorLabelsOmit"`
	ExpectResult       bson.RawValue `bson:"expectResult"`
	ErrorResponse      bson.Raw      `bson:"errorResponse"`
	WriteErrors        bson.Raw      `bson:"writeErrors"`
	WriteConcernErrors bson.RawValue `bson:"writeConcernErrors"`
}

// ExpectedEvents lists the events one client must have seen. Each field holds the format's key
// named in its bson tag, as the unified test format defines it.
type ExpectedEvents struct {
	Client            string     `bson:"client"`
	EventType         string     `bson:"eventType"`
	IgnoreExtraEvents bool       `bson:"ignoreExtraEvents"`
	Events            []bson.Raw `bson:"events"`
}

// ReadFile parses a unified-format JSON file.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := bson.UnmarshalExtJSON(data, false, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}
