package mongotest

import (
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// stage is one aggregation stage after $changeStream, applied to each event.
type stage interface {
	// apply returns the transformed event, or nil to drop it.
	apply(ev bsoncore.Document) (bsoncore.Document, error)
}

// compileStage parses one stage document such as {$match: {...}}.
func compileStage(sd bsoncore.Document) (stage, error) {
	name, _ := commandName(sd)
	arg := sd.Lookup(name)
	switch name {
	case "$match":
		fd, ok := arg.DocumentOK()
		if !ok {
			return nil, errorf(codeLocation15959, "the match filter must be an expression in an object")
		}
		m, err := compileFilter(fd)
		if err != nil {
			return nil, err
		}
		return matchStage{m}, nil
	}
	return nil, errorf(codeLocation40324, "Unrecognized pipeline stage name: '%s' (mongotest supports $match, $project, $addFields, $set, $unset, $replaceRoot, $replaceWith and $changeStreamSplitLargeEvent after $changeStream)", name)
}

const codeLocation15959 = 15959

type matchStage struct{ m matcher }

func (s matchStage) apply(ev bsoncore.Document) (bsoncore.Document, error) {
	if s.m.matches(ev) {
		return ev, nil
	}
	return nil, nil
}
