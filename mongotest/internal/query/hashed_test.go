package query

import (
	"math"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

func rawValue(t *testing.T, v any) bsoncore.Value {
	t.Helper()
	typ, data, err := bson.MarshalValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return bsoncore.Value{Type: bsoncore.Type(typ), Data: data}
}

// The values are the server's: the manual's $toHashedIndexKey example
// (seed 0), the server's startup self-check (seed 0), and its hash
// stability test jstests/core/hashed_index_*/hash_*.js (seed 1).
func TestHashedIndexKeyMatchesServer(t *testing.T) {
	const (
		maxLong  = 1136124329541638701
		minLong  = 5744114172487291558
		zeroLong = 5574369198691456941
	)
	cases := []struct {
		v    any
		seed int32
		want int64
	}{
		{"string to hash", 0, 763543691661428748},
		{int32(42), 0, -944302157085130861},
		{"hashthis", 1, 6271151123721111923},
		{math.Pow(2, 63), 1, minLong},
		{math.Pow(2, 63) + math.Pow(2, 11), 1, maxLong},
		{math.Pow(2, 500), 1, maxLong},
		{math.Inf(1), 1, maxLong},
		{math.Pow(2, 63) - math.Pow(2, 10), 1, -3954856262017896439},
		{-math.Pow(2, 63), 1, minLong},
		{-(math.Pow(2, 63) - math.Pow(2, 10)), 1, -1762411739488908479},
		{-(math.Pow(2, 63) + math.Pow(2, 11)), 1, minLong},
		{math.Inf(-1), 1, minLong},
		{0.0, 1, zeroLong},
		{int64(0), 1, zeroLong},
		{math.NaN(), 1, zeroLong},
		{bson.D{{Key: "a", Value: 1.0}, {Key: "b", Value: 2.0}}, 1, -7076810813311352857},
		{bson.D{{Key: "a", Value: math.Pow(2, 63)}, {Key: "b", Value: math.NaN()}}, 1, 1223292051903137684},
	}
	for _, c := range cases {
		got, err := hashSeeded(rawValue(t, c.v), c.seed)
		if err != nil || got != c.want {
			t.Errorf("hash(%v, seed %d) = %d, %v; want %d", c.v, c.seed, got, err, c.want)
		}
	}
	// The three number types hash alike, as a hashed index keys them.
	a, _ := HashedIndexKey(rawValue(t, int32(7)))
	b, _ := HashedIndexKey(rawValue(t, int64(7)))
	c, _ := HashedIndexKey(rawValue(t, 7.9))
	if a != b || a != c {
		t.Errorf("7 as int32, int64 and 7.9: %d %d %d; want one hash", a, b, c)
	}
	if _, err := HashedIndexKey(rawValue(t, bson.NewDecimal128(1, 1))); err == nil {
		t.Error("Decimal128 hashed; mongotest should refuse it")
	}
}
