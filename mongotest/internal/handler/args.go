package handler

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// collName reads the collection a command names in its first field.
func (r *request) collName() (string, error) {
	name, ok := r.arg(r.name).StringValueOK()
	if !ok || name == "" {
		return "", codes.Errorf(codes.InvalidNamespace, "collection name must be a non-empty string in command %s", r.name)
	}
	return name, nil
}

// docsArg reads an array of documents argument.
func (r *request) docsArg(key string) ([]bsoncore.Document, error) {
	arr, ok := r.arg(key).ArrayOK()
	if !ok {
		return nil, codes.Errorf(codes.FailedToParse, "BSON field '%s.%s' is missing or not an array", r.name, key)
	}
	vals, err := arr.Values()
	if err != nil {
		return nil, codes.Errorf(codes.FailedToParse, "%s: %v", key, err)
	}
	out := make([]bsoncore.Document, len(vals))
	for i, v := range vals {
		d, ok := v.DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.TypeMismatch, "BSON field '%s.%s.%d' must be an object", r.name, key, i)
		}
		out[i] = d
	}
	return out, nil
}

// ordered reads the ordered flag (default true).
func (r *request) ordered() bool {
	if b, ok := r.arg("ordered").BooleanOK(); ok {
		return b
	}
	return true
}

// optDoc reads an optional document argument.
func (r *request) optDoc(key string) (bsoncore.Document, error) {
	v := r.arg(key)
	if v.Type == 0 || v.Type == bsoncore.TypeNull {
		return nil, nil
	}
	d, ok := v.DocumentOK()
	if !ok {
		return nil, codes.Errorf(codes.TypeMismatch, "BSON field '%s.%s' is the wrong type '%s', expected type 'object'", r.name, key, bsonutil.TypeName(v.Type))
	}
	return d, nil
}

// filterArg compiles the optional query filter argument key; everything
// matches when it is absent.
func (r *request) filterArg(key string) (query.Matcher, error) {
	q, err := r.optDoc(key)
	if err != nil || q == nil {
		return query.MatchAll(nil), err
	}
	return query.CompileFilter(q)
}

// checkCollationArg checks the optional collation argument.
func (r *request) checkCollationArg() error {
	cd, err := r.optDoc("collation")
	if err != nil {
		return err
	}
	return query.CheckCollation(cd)
}

// session returns the id of the command's lsid ("" when it has none), the
// key a session's cursors and transactions are kept under.
func (r *request) session() string {
	lsid, ok := r.arg("lsid").DocumentOK()
	if !ok {
		return ""
	}
	id := lsid.Lookup("id")
	if id.Type == 0 {
		return ""
	}
	_, data, ok := id.BinaryOK()
	if !ok {
		return string(id.Data)
	}
	return string(data)
}
