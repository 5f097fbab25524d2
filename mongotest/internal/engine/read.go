package engine

import (
	"sort"

	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// selectDocsLocked returns the documents of c that match m, sorted by keys
// when given (stable: insertion order otherwise), after skip, at most
// limit (0: all).
func selectDocsLocked(c *collection, m query.Matcher, keys []query.SortKey, skip, limit int64) []bsoncore.Document {
	if c == nil {
		return nil
	}
	var docs []bsoncore.Document
	early := len(keys) == 0
	c.each(func(_ string, d bsoncore.Document) bool {
		if m.Matches(d) {
			docs = append(docs, d)
		}
		return !early || limit == 0 || int64(len(docs)) < skip+limit
	})
	if len(keys) > 0 {
		sort.SliceStable(docs, func(i, j int) bool { return query.CompareBySort(docs[i], docs[j], keys) < 0 })
	}
	if skip > 0 {
		if skip >= int64(len(docs)) {
			return nil
		}
		docs = docs[skip:]
	}
	if limit > 0 && int64(len(docs)) > limit {
		docs = docs[:limit]
	}
	return docs
}

// Find returns the documents of db.coll that filter matches, sorted by
// sort when given (insertion order otherwise), after skip, at most limit
// (0: all). A missing collection holds no documents; a view is an error.
func (e *Engine) Find(db, coll string, filter query.Matcher, sort []query.SortKey, skip, limit int64) ([]bsoncore.Document, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.dataCollLocked(db, coll)
	if err != nil {
		return nil, err
	}
	return selectDocsLocked(c, filter, sort, skip, limit), nil
}

// Aggregate runs a collection pipeline over the documents of db.coll.
func (e *Engine) Aggregate(db, coll string, stages []query.CollStage) ([]bsoncore.Document, error) {
	docs, err := e.Find(db, coll, query.MatchAll(nil), nil, 0, 0)
	if err != nil {
		return nil, err
	}
	for _, st := range stages {
		if docs, err = st.Run(docs); err != nil {
			return nil, err
		}
	}
	return docs, nil
}
