package query

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// The comparison and logical expression operators, for $expr in filters:
// $eq, $ne, $gt, $gte, $lt, $lte and $cmp over two expressions (compared
// in BSON order, missing as null), and $and, $or and $not (truthiness as
// a real server defines it: false, null, missing, 0 and undefined are
// false).

var comparisonOps = map[string]func(int) bool{
	"$eq":  func(c int) bool { return c == 0 },
	"$ne":  func(c int) bool { return c != 0 },
	"$gt":  func(c int) bool { return c > 0 },
	"$gte": func(c int) bool { return c >= 0 },
	"$lt":  func(c int) bool { return c < 0 },
	"$lte": func(c int) bool { return c <= 0 },
}

// compileOperatorExpr compiles {op: args} for the operators above; ok is
// false for another operator.
func compileOperatorExpr(op string, arg bsoncore.Value) (aggExpr, bool, error) {
	_, isCmp := comparisonOps[op]
	if !isCmp && op != "$cmp" && op != "$and" && op != "$or" && op != "$not" {
		return nil, false, nil
	}
	var args []aggExpr
	if arr, ok := arg.ArrayOK(); ok {
		vals, _ := arr.Values()
		for _, v := range vals {
			x, err := compileAggExpr(v)
			if err != nil {
				return nil, true, err
			}
			args = append(args, x)
		}
	} else {
		x, err := compileAggExpr(arg)
		if err != nil {
			return nil, true, err
		}
		args = []aggExpr{x}
	}
	if (isCmp || op == "$cmp") && len(args) != 2 {
		return nil, true, codes.Errorf(codes.Location16020, "Expression %s takes exactly 2 arguments. %d were passed in.", op, len(args))
	}
	if op == "$not" && len(args) != 1 {
		return nil, true, codes.Errorf(codes.Location16020, "Expression $not takes exactly 1 arguments. %d were passed in.", len(args))
	}
	return opExpr{op: op, args: args}, true, nil
}

type opExpr struct {
	op   string
	args []aggExpr
}

func (x opExpr) eval(root bsoncore.Document) (bsoncore.Value, bool, error) {
	vals := make([]bsoncore.Value, len(x.args))
	for i, a := range x.args {
		v, ok, err := a.eval(root)
		if err != nil {
			return bsoncore.Value{}, false, err
		}
		if !ok {
			v = bsoncore.Value{Type: bsoncore.TypeNull}
		}
		vals[i] = v
	}
	switch x.op {
	case "$cmp":
		c := bsonutil.CompareValues(vals[0], vals[1])
		return bsoncore.Value{Type: bsoncore.TypeInt32, Data: bsoncore.AppendInt32(nil, int32(sign(c)))}, true, nil
	case "$and", "$or":
		res := x.op == "$and"
		for _, v := range vals {
			if truthy(v) != res {
				res = !res
				break
			}
		}
		return boolValue(res), true, nil
	case "$not":
		return boolValue(!truthy(vals[0])), true, nil
	}
	return boolValue(comparisonOps[x.op](bsonutil.CompareValues(vals[0], vals[1]))), true, nil
}

func sign(c int) int {
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

func boolValue(b bool) bsoncore.Value {
	return bsoncore.Value{Type: bsoncore.TypeBoolean, Data: bsoncore.AppendBoolean(nil, b)}
}

// truthy is an expression value's truth: false, null, undefined, missing
// and zero are false.
func truthy(v bsoncore.Value) bool {
	switch v.Type {
	case 0, bsoncore.TypeNull, bsoncore.TypeUndefined:
		return false
	case bsoncore.TypeBoolean:
		return v.Boolean()
	}
	if f, ok := bsonutil.NumberOf(v); ok {
		return f != 0
	}
	return true
}

// exprMatcher is a filter's {$expr: <expression>}.
type exprMatcher struct{ x aggExpr }

func (m exprMatcher) Matches(doc bsoncore.Document) bool {
	v, ok, err := m.x.eval(doc)
	return err == nil && ok && truthy(v)
}
