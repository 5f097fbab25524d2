package stream

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The partitions' hash ranges cover the int64 line without a gap or an
// overlap, in equal parts, and partitionOf finds each hash's range.
func TestPartitionBounds(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 16, 1000, MaxPartitions} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var prevHi int64
			for k := range n {
				lo, hi, hasLo, hasHi := partitionBounds(k, n)
				if hasLo != (k > 0) || hasHi != (k < n-1) {
					t.Fatalf("partition %d: hasLo %v hasHi %v", k, hasLo, hasHi)
				}
				if k > 0 && lo != prevHi {
					t.Fatalf("partition %d starts at %d, the previous ends at %d", k, lo, prevHi)
				}
				if !hasLo {
					lo = math.MinInt64
				}
				if hasHi {
					if width, want := uint64(hi-lo), uint64(math.MaxUint64)/uint64(n); width < want || width > want+1 {
						t.Fatalf("partition %d is %d wide, want about %d", k, width, want)
					}
					prevHi = hi
					if got := partitionOf(hi-1, n); got != k {
						t.Fatalf("partitionOf(%d) = %d, want %d (last of its range)", hi-1, got, k)
					}
				}
				if got := partitionOf(lo, n); got != k {
					t.Fatalf("partitionOf(%d) = %d, want %d (first of its range)", lo, got, k)
				}
			}
			if got := partitionOf(math.MaxInt64, n); got != n-1 {
				t.Fatalf("partitionOf(MaxInt64) = %d, want %d", got, n-1)
			}
			rng := rand.New(rand.NewPCG(1, uint64(n)))
			for range 10000 {
				h := int64(rng.Uint64())
				k := partitionOf(h, n)
				lo, hi, hasLo, hasHi := partitionBounds(k, n)
				if (hasLo && h < lo) || (hasHi && h >= hi) {
					t.Fatalf("partitionOf(%d) = %d, whose range is [%d, %d)", h, k, lo, hi)
				}
			}
		})
	}
}

// Every partition goes to exactly one member, each member gets ⌊n/m⌋ or
// ⌈n/m⌉, every member computes the same deal from the same members in any
// order, and a member joining takes partitions from the others without
// moving partitions between them more than needed.
func TestAssignPartitions(t *testing.T) {
	for _, tc := range []struct {
		members []string
		n       int
	}{
		{[]string{"a"}, 16},
		{[]string{"a", "b"}, 16},
		{[]string{"c", "a", "b"}, 16},
		{[]string{"m1", "m2", "m3", "m4"}, 16},
		{[]string{"m1", "m2", "m3", "m4", "m5"}, 3},
		{[]string{"x", "x", "y"}, 5},
	} {
		t.Run(fmt.Sprint(tc.members, tc.n), func(t *testing.T) {
			got := assignPartitions(tc.members, tc.n)
			distinct := slices.Compact(slices.Sorted(slices.Values(tc.members)))
			owner := make([]string, tc.n)
			for m, parts := range got {
				if !slices.Contains(distinct, m) {
					t.Fatalf("partitions dealt to %q, not a member", m)
				}
				if c := len(parts); c < tc.n/len(distinct) || c > (tc.n+len(distinct)-1)/len(distinct) {
					t.Fatalf("%q got %d partitions of %d over %d members", m, c, tc.n, len(distinct))
				}
				if !slices.IsSorted(parts) {
					t.Fatalf("%q: %v not sorted", m, parts)
				}
				for _, k := range parts {
					if owner[k] != "" {
						t.Fatalf("partition %d dealt to %q and %q", k, owner[k], m)
					}
					owner[k] = m
				}
			}
			for k, o := range owner {
				if o == "" {
					t.Fatalf("partition %d dealt to nobody", k)
				}
			}
			rev := slices.Clone(tc.members)
			slices.Reverse(rev)
			if again := assignPartitions(rev, tc.n); fmt.Sprint(again) != fmt.Sprint(got) {
				t.Fatalf("members in another order: %v, want %v", again, got)
			}
		})
	}
	// Growing from 3 to 4 members over 16 partitions moves 4 partitions to
	// the newcomer, at most a few more between the others.
	before := assignPartitions([]string{"m1", "m2", "m3"}, 16)
	after := assignPartitions([]string{"m1", "m2", "m3", "m4"}, 16)
	moved := 0
	for _, m := range []string{"m1", "m2", "m3"} {
		for _, k := range before[m] {
			if !slices.Contains(after[m], k) {
				moved++
			}
		}
	}
	if len(after["m4"]) != 4 || moved > 8 {
		t.Fatalf("3 → 4 members: the newcomer got %v, %d partitions left the old members (before %v, after %v)", after["m4"], moved, before, after)
	}
	if got := assignPartitions(nil, 4); len(got) != 0 {
		t.Fatalf("no members: %v", got)
	}
}

// The partition stages go after the user's pipeline, before its split
// stage.
func TestPartitionPipeline(t *testing.T) {
	user := []any{map[string]any{"$match": map[string]any{"operationType": "insert"}}, map[string]any{splitStage: map[string]any{}}}
	p, err := partitionPipeline(user, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range p.([]any) {
		name, err := stageName(st)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	want := []string{"$match", "$addFields", "$match", "$unset", splitStage}
	if !slices.Equal(names, want) {
		t.Fatalf("stages %v, want %v", names, want)
	}
	if _, err := partitionPipeline(map[string]any{"$match": 1}, 0, 2); err == nil {
		t.Fatal("a pipeline that is not a slice of stages: no error")
	}
}
