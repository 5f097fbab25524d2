package query

import (
	"math"
	"strconv"
	"strings"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// groupStage is $group: documents grouped by the value of the _id
// expression, each group one output document {_id, <field>: <accumulated>…}.
// Groups come out in the order their first document came in.
type groupStage struct {
	id   aggExpr
	accs []groupAcc
}

// groupAcc is one output field: an accumulator over an expression.
type groupAcc struct {
	field string
	op    string
	x     aggExpr
}

// groupAccumulators are the accumulators mongotest evaluates; the others a
// real server has are NotImplemented, names it does not know 15952.
var groupAccumulators = map[string]bool{
	"$sum": true, "$avg": true, "$min": true, "$max": true, "$first": true, "$last": true, "$push": true,
}

var otherAccumulators = map[string]bool{
	"$addToSet": true, "$count": true, "$stdDevPop": true, "$stdDevSamp": true, "$mergeObjects": true,
	"$top": true, "$bottom": true, "$topN": true, "$bottomN": true, "$firstN": true, "$lastN": true,
	"$maxN": true, "$minN": true, "$median": true, "$percentile": true, "$accumulator": true,
	"$concatArrays": true, "$setUnion": true,
}

func compileGroup(arg bsoncore.Value) (CollStage, error) {
	spec, ok := arg.DocumentOK()
	if !ok {
		return nil, codes.Errorf(codes.Location15947, "a group's fields must be specified in an object")
	}
	elems, err := spec.Elements()
	if err != nil {
		return nil, codes.Errorf(codes.FailedToParse, "$group: %v", err)
	}
	g := &groupStage{}
	for _, el := range elems {
		k, v := el.Key(), el.Value()
		if k == "_id" {
			if g.id, err = compileAggExpr(v); err != nil {
				return nil, err
			}
			continue
		}
		if strings.Contains(k, ".") {
			return nil, codes.Errorf(codes.Location40235, "The field name '%s' cannot contain '.'", k)
		}
		if strings.HasPrefix(k, "$") {
			return nil, codes.Errorf(codes.Location40236, "The field name '%s' cannot be an operator name", k)
		}
		ad, ok := v.DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.Location40234, "The field '%s' must be an accumulator object", k)
		}
		aels, err := ad.Elements()
		if err != nil {
			return nil, codes.Errorf(codes.FailedToParse, "$group: %v", err)
		}
		if len(aels) != 1 {
			return nil, codes.Errorf(codes.Location40238, "The field '%s' must specify one accumulator", k)
		}
		op := aels[0].Key()
		switch {
		case groupAccumulators[op]:
		case otherAccumulators[op]:
			return nil, codes.Errorf(codes.NotImplemented, "mongotest does not support the $group accumulator %s (it supports $sum, $avg, $min, $max, $first, $last and $push)", op)
		default:
			return nil, codes.Errorf(codes.Location15952, "unknown group operator '%s'", op)
		}
		x, err := compileAggExpr(aels[0].Value())
		if err != nil {
			return nil, err
		}
		g.accs = append(g.accs, groupAcc{field: k, op: op, x: x})
	}
	if g.id == nil {
		return nil, codes.Errorf(codes.Location15955, "a group specification must include an _id")
	}
	return g, nil
}

// group is one group being accumulated: its key, and for each accumulator
// the values its expression took (Type 0 when missing).
type group struct {
	key  bsoncore.Value
	vals [][]bsoncore.Value
}

func (g *groupStage) Run(docs []bsoncore.Document) ([]bsoncore.Document, error) {
	var groups []*group
	buckets := map[string][]*group{}
	for _, d := range docs {
		key, ok, err := g.id.eval(d)
		if err != nil {
			return nil, err
		}
		if !ok {
			key = bsoncore.Value{Type: bsoncore.TypeNull}
		}
		bk := groupBucket(key)
		var gr *group
		for _, cand := range buckets[bk] {
			if bsonutil.CompareValues(cand.key, key) == 0 {
				gr = cand
				break
			}
		}
		if gr == nil {
			gr = &group{key: key, vals: make([][]bsoncore.Value, len(g.accs))}
			buckets[bk] = append(buckets[bk], gr)
			groups = append(groups, gr)
		}
		for i, a := range g.accs {
			v, ok, err := a.x.eval(d)
			if err != nil {
				return nil, err
			}
			if !ok {
				v = bsoncore.Value{}
			}
			gr.vals[i] = append(gr.vals[i], v)
		}
	}
	out := make([]bsoncore.Document, 0, len(groups))
	for _, gr := range groups {
		idx, o := bsoncore.AppendDocumentStart(nil)
		o = bsoncore.AppendValueElement(o, "_id", gr.key)
		for i, a := range g.accs {
			v, err := accumulate(a.op, gr.vals[i])
			if err != nil {
				return nil, err
			}
			o = bsoncore.AppendValueElement(o, a.field, v)
		}
		o, _ = bsoncore.AppendDocumentEnd(o, idx)
		out = append(out, o)
	}
	return out, nil
}

// groupBucket hashes a group key so that keys a real server groups
// together (1, 1.0 and NumberLong(1); documents equal field by field)
// share a bucket; within a bucket compareValues decides.
func groupBucket(v bsoncore.Value) string {
	switch b := bsonutil.TypeBracket(v.Type); b {
	case 10:
		f, _ := bsonutil.NumberOf(v)
		return "n" + strconv.FormatFloat(f, 'g', -1, 64)
	case 20, 25, 0, 5:
		return strconv.Itoa(b)
	default:
		return strconv.Itoa(b) + ":" + string(v.Data)
	}
}

var nullValue = bsoncore.Value{Type: bsoncore.TypeNull}

// accumulate computes one accumulator over the values of its group.
func accumulate(op string, vals []bsoncore.Value) (bsoncore.Value, error) {
	switch op {
	case "$sum":
		return sumValues(vals)
	case "$avg":
		return avgValues(vals)
	case "$min", "$max":
		var best bsoncore.Value
		for _, v := range vals {
			if v.Type == 0 || v.Type == bsoncore.TypeNull || v.Type == bsoncore.TypeUndefined {
				continue
			}
			c := bsonutil.CompareValues(v, best)
			if best.Type == 0 || op == "$min" && c < 0 || op == "$max" && c > 0 {
				best = v
			}
		}
		if best.Type == 0 {
			return nullValue, nil
		}
		return best, nil
	case "$first", "$last":
		v := vals[0]
		if op == "$last" {
			v = vals[len(vals)-1]
		}
		if v.Type == 0 {
			return nullValue, nil
		}
		return v, nil
	case "$push":
		idx, out := bsoncore.AppendArrayStart(nil)
		n := 0
		for _, v := range vals {
			if v.Type != 0 {
				out = bsoncore.AppendValueElement(out, bsonutil.ArrayKey(n), v)
				n++
			}
		}
		out, _ = bsoncore.AppendArrayEnd(out, idx)
		return bsoncore.Value{Type: bsoncore.TypeArray, Data: out}, nil
	}
	return bsoncore.Value{}, codes.Errorf(codes.Location15952, "unknown group operator '%s'", op)
}

// sumValues adds the numbers among vals (others are ignored) as a real
// server does: int32 while the sum fits, then int64, then double; any
// double makes a double.
func sumValues(vals []bsoncore.Value) (bsoncore.Value, error) {
	var isum int64
	var fsum float64
	kind := bsoncore.TypeInt32
	for _, v := range vals {
		switch v.Type {
		case bsoncore.TypeInt32, bsoncore.TypeInt64:
			n, _ := bsonutil.AsInt64(v)
			if v.Type == bsoncore.TypeInt64 && kind == bsoncore.TypeInt32 {
				kind = bsoncore.TypeInt64
			}
			if kind == bsoncore.TypeDouble {
				fsum += float64(n)
				continue
			}
			s := isum + n
			if (n > 0 && s < isum) || (n < 0 && s > isum) {
				kind, fsum = bsoncore.TypeDouble, float64(isum)+float64(n)
				continue
			}
			isum = s
		case bsoncore.TypeDouble:
			if kind != bsoncore.TypeDouble {
				kind, fsum = bsoncore.TypeDouble, float64(isum)
			}
			fsum += v.Double()
		case bsoncore.TypeDecimal128:
			return bsoncore.Value{}, codes.Errorf(codes.NotImplemented, "mongotest does not support $sum or $avg over decimal values")
		}
	}
	switch {
	case kind == bsoncore.TypeDouble:
		return bsoncore.Value{Type: bsoncore.TypeDouble, Data: bsoncore.AppendDouble(nil, fsum)}, nil
	case kind == bsoncore.TypeInt32 && isum >= math.MinInt32 && isum <= math.MaxInt32:
		return bsoncore.Value{Type: bsoncore.TypeInt32, Data: bsoncore.AppendInt32(nil, int32(isum))}, nil
	}
	return bsoncore.Value{Type: bsoncore.TypeInt64, Data: bsoncore.AppendInt64(nil, isum)}, nil
}

// avgValues averages the numbers among vals as a double; null when there
// are none.
func avgValues(vals []bsoncore.Value) (bsoncore.Value, error) {
	var sum float64
	n := 0
	for _, v := range vals {
		if v.Type == bsoncore.TypeDecimal128 {
			return bsoncore.Value{}, codes.Errorf(codes.NotImplemented, "mongotest does not support $sum or $avg over decimal values")
		}
		if f, ok := bsonutil.NumberOf(v); ok {
			sum += f
			n++
		}
	}
	if n == 0 {
		return nullValue, nil
	}
	return bsoncore.Value{Type: bsoncore.TypeDouble, Data: bsoncore.AppendDouble(nil, sum/float64(n))}, nil
}
