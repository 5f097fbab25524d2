package query

import (
	"math"
	"sort"
	"strings"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Collection aggregations: aggregate on a collection with a pipeline that
// does not start with $changeStream, such as the driver's CountDocuments
// ([{$match}, {$skip}?, {$limit}?, {$group: {_id: 1, n: {$sum: 1}}}]).
// The aggregate handler runs such pipelines with CompileCollPipeline and
// the CollStage of each stage.

// unsupportedStages are aggregation stages a real server has and mongotest
// does not evaluate: NotImplemented (238) names them, where an unknown
// name gets 40324.
var unsupportedStages = map[string]bool{
	"$lookup": true, "$unwind": true, "$facet": true, "$bucket": true, "$bucketAuto": true,
	"$sortByCount": true, "$out": true, "$merge": true, "$geoNear": true, "$graphLookup": true,
	"$sample": true, "$redact": true, "$densify": true, "$fill": true, "$setWindowFields": true,
	"$unionWith": true, "$documents": true, "$indexStats": true, "$collStats": true,
	"$planCacheStats": true, "$search": true, "$searchMeta": true, "$vectorSearch": true,
	"$listSearchIndexes": true, "$currentOp": true, "$listLocalSessions": true,
	"$listSessions": true, "$changeStreamSplitLargeEvent": true, "$querySettings": true,
	"$listSampledQueries": true, "$shardedDataDistribution": true, "$rankFusion": true,
	"$scoreFusion": true, "$score": true,
}

// CollStage is one stage of a collection aggregation: it turns the
// documents the previous stage produced into its own output.
type CollStage interface {
	Run(docs []bsoncore.Document) ([]bsoncore.Document, error)
}

// CompileCollPipeline compiles the stages of a collection aggregation.
func CompileCollPipeline(arr bsoncore.Array) ([]CollStage, error) {
	specs, err := splitPipeline(arr)
	if err != nil {
		return nil, err
	}
	out := make([]CollStage, 0, len(specs))
	for _, sp := range specs {
		st, err := compileCollStage(sp.name, sp.arg)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func compileCollStage(name string, arg bsoncore.Value) (CollStage, error) {
	switch name {
	case "$sort":
		sd, ok := arg.DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.Location15973, "the $sort key specification must be an object")
		}
		if len(sd) <= 5 {
			return nil, codes.Errorf(codes.Location15976, "$sort stage must have at least one sort key")
		}
		keys, err := ParseSort(sd)
		if err != nil {
			return nil, err
		}
		return sortStage(keys), nil
	case "$skip":
		n, err := stageCount(name, arg, codes.Location5107200)
		return skipStage(n), err
	case "$limit":
		if _, isNum := bsonutil.NumberOf(arg); !isNum {
			return nil, codes.Errorf(codes.Location15957, "the limit must be specified as a number")
		}
		n, err := stageCount(name, arg, codes.Location5107201)
		if err == nil && n == 0 {
			err = codes.Errorf(codes.Location15958, "the limit must be positive")
		}
		return limitStage(n), err
	case "$count":
		return compileCount(arg)
	case "$group":
		return compileGroup(arg)
	case "$changeStream":
		return nil, codes.Errorf(codes.Location40602, "$changeStream is only valid as the first stage in a pipeline")
	case "$listSearchIndexes":
		// As a mongod without a search server (mongot) answers.
		return nil, codes.Errorf(codes.SearchNotEnabled, "Using Atlas Search Database Commands and the $listSearchIndexes aggregation stage requires additional configuration. Please connect to Atlas or an AtlasCLI local deployment to enable. For more information on how to connect, see https://dochub.mongodb.org/core/atlas-cli-deploy-local-reqs")
	case "$search", "$searchMeta", "$vectorSearch":
		return nil, codes.Errorf(codes.SearchNotEnabled, "Using $search and $vectorSearch aggregation stages requires additional configuration. Please connect to Atlas or an AtlasCLI local deployment to enable. For more information on how to connect, see https://dochub.mongodb.org/core/atlas-cli-deploy-local-reqs.")
	}
	st, err := compileDocStage(name, arg)
	if err != nil {
		return nil, err
	}
	if st != nil {
		return docStage{st}, nil
	}
	if unsupportedStages[name] {
		return nil, codes.Errorf(codes.NotImplemented, "mongotest does not support the aggregation stage %s (it supports $match, $sort, $skip, $limit, $project, $addFields, $set, $unset, $replaceRoot, $replaceWith, $count and $group)", name)
	}
	return nil, codes.Errorf(codes.Location40324, "Unrecognized pipeline stage name: '%s'", name)
}

// stageCount reads the non-negative integer argument of $skip or $limit.
func stageCount(name string, arg bsoncore.Value, code int32) (int64, error) {
	f, ok := bsonutil.NumberOf(arg)
	switch {
	case !ok:
		return 0, codes.Errorf(code, "invalid argument to %s stage: Expected a number in: %s: %s", name, name, arg)
	case math.IsNaN(f):
		return 0, codes.Errorf(code, "invalid argument to %s stage: Expected an integer, but found NaN in: %s: nan", name, name)
	case f != math.Trunc(f):
		return 0, codes.Errorf(code, "invalid argument to %s stage: Expected an integer: %s: %s", name, name, arg)
	case f < 0:
		return 0, codes.Errorf(code, "invalid argument to %s stage: Expected a non-negative number in: %s: %s", name, name, arg)
	}
	if n, ok := bsonutil.AsInt64(arg); ok {
		return n, nil
	}
	return math.MaxInt64, nil
}

// docStage runs a one-document-at-a-time stage of pipeline.go.
type docStage struct{ st Stage }

func (s docStage) Run(docs []bsoncore.Document) ([]bsoncore.Document, error) {
	out := make([]bsoncore.Document, 0, len(docs))
	for _, d := range docs {
		r, err := s.st.Apply(d)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

type sortStage []SortKey

func (s sortStage) Run(docs []bsoncore.Document) ([]bsoncore.Document, error) {
	out := append([]bsoncore.Document(nil), docs...)
	sort.SliceStable(out, func(i, j int) bool { return CompareBySort(out[i], out[j], s) < 0 })
	return out, nil
}

type skipStage int64

func (s skipStage) Run(docs []bsoncore.Document) ([]bsoncore.Document, error) {
	if int64(s) >= int64(len(docs)) {
		return nil, nil
	}
	return docs[s:], nil
}

type limitStage int64

func (s limitStage) Run(docs []bsoncore.Document) ([]bsoncore.Document, error) {
	if int64(s) < int64(len(docs)) {
		return docs[:s], nil
	}
	return docs, nil
}

// countStage is $count: one document {field: n}, none for no input.
type countStage string

func compileCount(arg bsoncore.Value) (CollStage, error) {
	name, ok := arg.StringValueOK()
	switch {
	case !ok:
		return nil, codes.Errorf(codes.Location40156, "the count field must be a non-empty string")
	case name == "":
		return nil, codes.Errorf(codes.Location40157, "the count field must be a non-empty string")
	case strings.HasPrefix(name, "$"):
		return nil, codes.Errorf(codes.Location40158, "the count field cannot be a $-prefixed path")
	case strings.Contains(name, "."):
		return nil, codes.Errorf(codes.Location40160, "the count field cannot contain '.'")
	}
	return countStage(name), nil
}

func (s countStage) Run(docs []bsoncore.Document) ([]bsoncore.Document, error) {
	if len(docs) == 0 {
		return nil, nil
	}
	return []bsoncore.Document{appendCount(nil, string(s), int64(len(docs)))}, nil
}

// appendCount builds {name: n}, n an int32 when it fits, as a real server
// counts.
func appendCount(dst []byte, name string, n int64) bsoncore.Document {
	idx, out := bsoncore.AppendDocumentStart(dst)
	if n <= math.MaxInt32 {
		out = bsoncore.AppendInt32Element(out, name, int32(n))
	} else {
		out = bsoncore.AppendInt64Element(out, name, n)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}
