package query

import (
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// updateStages are the stages a pipeline-style update may use. They are
// the aggregation stages of pipeline.go, run on the document's bytes.
var updateStages = map[string]bool{
	"$set": true, "$addFields": true, "$unset": true, "$project": true,
	"$replaceRoot": true, "$replaceWith": true,
}

// compileUpdatePipeline compiles the u of a pipeline-style update, such as
// [{$set: {...}}, {$unset: "x"}].
func compileUpdatePipeline(arr bsoncore.Array) ([]Stage, error) {
	specs, err := splitPipeline(arr)
	if err != nil {
		return nil, err
	}
	out := make([]Stage, 0, len(specs))
	for _, sp := range specs {
		if !updateStages[sp.name] {
			return nil, codes.Errorf(codes.InvalidOptions, "%s is not allowed to be used within an update (mongotest supports $set, $addFields, $unset, $project, $replaceRoot and $replaceWith)", sp.name)
		}
		st, err := compileDocStage(sp.name, sp.arg)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// runUpdatePipeline applies the stages to doc and returns the new
// document. None of the update stages drops a document.
func runUpdatePipeline(stages []Stage, doc bsoncore.Document) (bsoncore.Document, error) {
	for _, st := range stages {
		next, err := st.Apply(doc)
		if err != nil {
			return nil, err
		}
		doc = next
	}
	return doc, nil
}
