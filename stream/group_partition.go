package stream

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math/bits"
	"slices"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// A group (group.go) splits one stream into partitions by the hashed
// documentKey of each event, as a hashed index hashes it: the server
// computes {$toHashedIndexKey: "$documentKey"}, a signed 64-bit integer,
// and partition k of P keeps the events whose hash falls in the k-th of P
// equal ranges of the int64 line. Events without a documentKey (drop,
// rename, dropDatabase, invalidate and other DDL events) go to every
// partition.

// partitionHashField holds the hash between the stages that add and
// remove it; no change event has a field of this name.
const partitionHashField = "_changestreamPartitionHash"

// partitionBounds returns the hash range of partition k of n: lo ≤ h < hi,
// with hasLo false for the first partition and hasHi false for the last.
func partitionBounds(k, n int) (lo, hi int64, hasLo, hasHi bool) {
	bound := func(i int) int64 {
		q, _ := bits.Div64(uint64(i), 0, uint64(n)) // i·2⁶⁴/n, i < n
		return int64(q + 1<<63)                     // shifted to start at MinInt64
	}
	if k > 0 {
		lo, hasLo = bound(k), true
	}
	if k < n-1 {
		hi, hasHi = bound(k+1), true
	}
	return lo, hi, hasLo, hasHi
}

// partitionOf returns the partition of n whose range holds the hash h.
func partitionOf(h int64, n int) int {
	u := uint64(h) + 1<<63 // 0 at MinInt64
	// k = ⌊u·n / 2⁶⁴⌋ has its bound at or below u; the bound of k+1 can
	// be u too, when u·n/2⁶⁴ is just below an integer.
	k, _ := bits.Mul64(u, uint64(n))
	if int(k)+1 < n {
		if lo, _, _, _ := partitionBounds(int(k)+1, n); h >= lo {
			k++
		}
	}
	return int(k)
}

// partitionStages are the stages after the user's pipeline that keep the
// events of partition k of n.
func partitionStages(k, n int) []bson.D {
	lo, hi, hasLo, hasHi := partitionBounds(k, n)
	var rng bson.D
	if hasLo {
		rng = append(rng, bson.E{Key: "$gte", Value: lo})
	}
	if hasHi {
		rng = append(rng, bson.E{Key: "$lt", Value: hi})
	}
	match := bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "documentKey", Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{{Key: partitionHashField, Value: rng}},
	}}}
	if len(rng) == 0 { // one partition: every event
		match = bson.D{}
	}
	return []bson.D{
		{{Key: "$addFields", Value: bson.D{{Key: partitionHashField, Value: bson.D{{Key: "$toHashedIndexKey", Value: "$documentKey"}}}}}},
		{{Key: "$match", Value: match}},
		{{Key: "$unset", Value: partitionHashField}},
	}
}

// partitionPipeline appends the stages of partition k of n to pipeline,
// before its $changeStreamSplitLargeEvent stage if it ends with one.
func partitionPipeline(pipeline any, k, n int) (any, error) {
	stages, err := pipelineStages(pipeline, 3)
	if err != nil {
		return nil, err
	}
	var split []any
	if len(stages) > 0 {
		last, err := stageName(stages[len(stages)-1])
		if err != nil {
			return nil, err
		}
		if last == splitStage {
			split, stages = []any{stages[len(stages)-1]}, stages[:len(stages)-1]
		}
	}
	for _, st := range partitionStages(k, n) {
		stages = append(stages, st)
	}
	return append(stages, split...), nil
}

// partitionName is the stream name of partition k of n in group name: its
// checkpoint and lease document.
func partitionName(name string, k, n int) string {
	return name + "/p" + strconv.Itoa(k) + "/" + strconv.Itoa(n)
}

// assignPartitions deals n partitions out to members (each named once),
// the same way on every member that sees the same members: each member
// gets ⌊n/m⌋ or ⌈n/m⌉ partitions. Every (member, partition) pair has a
// score, a hash of the two; going from the highest score down, a pair's
// partition goes to its member while both are free of room left. A member
// joining or leaving moves few partitions of the others, since the scores
// do not depend on who else is there. It returns, per member, its
// partitions in increasing order.
func assignPartitions(members []string, n int) map[string][]int {
	sorted := slices.Clone(members)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	out := make(map[string][]int, len(sorted))
	if len(sorted) == 0 {
		return out
	}
	type pair struct {
		score uint64
		m, k  int
	}
	pairs := make([]pair, 0, len(sorted)*n)
	for m, name := range sorted {
		for k := range n {
			pairs = append(pairs, pair{rankScore(name, k), m, k})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		switch {
		case a.score != b.score:
			return cmp.Compare(b.score, a.score)
		case a.m != b.m:
			return cmp.Compare(a.m, b.m)
		}
		return cmp.Compare(a.k, b.k)
	})
	room := make([]int, len(sorted))
	for m := range sorted {
		room[m] = n / len(sorted)
		if m < n%len(sorted) {
			room[m]++
		}
	}
	taken := make([]bool, n)
	for _, p := range pairs {
		if room[p.m] > 0 && !taken[p.k] {
			room[p.m]--
			taken[p.k] = true
			out[sorted[p.m]] = append(out[sorted[p.m]], p.k)
		}
	}
	for _, parts := range out {
		slices.Sort(parts)
	}
	return out
}

// rankScore is how strongly member wants partition k: FNV-1a of both,
// mixed by SplitMix64's finalizer so that close names and numbers score
// apart.
func rankScore(member string, k int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(member))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(k)))
	z := h.Sum64()
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// MaxPartitions is the most partitions a group may have.
const MaxPartitions = 1024

func checkPartitions(n int) error {
	if n < 1 || n > MaxPartitions {
		return fmt.Errorf("changestream: invalid GroupOptions: Partitions %d is not between 1 and %d", n, MaxPartitions)
	}
	return nil
}
