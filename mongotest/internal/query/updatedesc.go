package query

import (
	"strconv"
	"strings"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// pathComp is one component of a changed path: a field name or an array
// position.
type pathComp struct {
	name  string
	idx   int
	isIdx bool
}

func (c pathComp) String() string {
	if c.isIdx {
		return strconv.Itoa(c.idx)
	}
	return c.name
}

func joinComps(cs []pathComp) string {
	var b strings.Builder
	for i, c := range cs {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(c.String())
	}
	return b.String()
}

// ambiguous tells whether a dotted path cannot be read back unambiguously:
// it has a field name that looks like an array position or contains a dot.
// Only such paths appear in disambiguatedPaths.
func ambiguous(cs []pathComp) bool {
	for _, c := range cs {
		if c.isIdx {
			continue
		}
		if strings.Contains(c.name, ".") {
			return true
		}
		if c.name != "" && strings.Trim(c.name, "0123456789") == "" {
			return true
		}
	}
	return false
}

// UpdateDesc is an update event's updateDescription under construction.
type UpdateDesc struct {
	updated   []descField
	removed   [][]pathComp
	truncated []truncation
}

type descField struct {
	path []pathComp
	v    bsoncore.Value
}

type truncation struct {
	path []pathComp
	size int
}

// Build returns the updateDescription document and the
// disambiguatedPaths document (empty when no path is ambiguous).
func (u *UpdateDesc) Build() (desc, disamb bsoncore.Document) {
	idx, out := bsoncore.AppendDocumentStart(nil)
	didx, dout := bsoncore.AppendDocumentStart(nil)
	seen := map[string]bool{}
	addDisamb := func(p []pathComp) {
		key := joinComps(p)
		if !ambiguous(p) || seen[key] {
			return
		}
		seen[key] = true
		var aidx int32
		aidx, dout = bsoncore.AppendArrayElementStart(dout, key)
		for i, c := range p {
			if c.isIdx {
				dout = bsoncore.AppendInt32Element(dout, bsonutil.ArrayKey(i), int32(c.idx))
			} else {
				dout = bsoncore.AppendStringElement(dout, bsonutil.ArrayKey(i), c.name)
			}
		}
		dout, _ = bsoncore.AppendArrayEnd(dout, aidx)
	}
	uidx, out := bsoncore.AppendDocumentElementStart(out, "updatedFields")
	for _, f := range u.updated {
		out = bsoncore.AppendValueElement(out, joinComps(f.path), f.v)
		addDisamb(f.path)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, uidx)
	ridx, out := bsoncore.AppendArrayElementStart(out, "removedFields")
	for i, p := range u.removed {
		out = bsoncore.AppendStringElement(out, bsonutil.ArrayKey(i), joinComps(p))
		addDisamb(p)
	}
	out, _ = bsoncore.AppendArrayEnd(out, ridx)
	tidx, out := bsoncore.AppendArrayElementStart(out, "truncatedArrays")
	for i, t := range u.truncated {
		var eidx int32
		eidx, out = bsoncore.AppendDocumentElementStart(out, bsonutil.ArrayKey(i))
		out = bsoncore.AppendStringElement(out, "field", joinComps(t.path))
		out = bsoncore.AppendInt32Element(out, "newSize", int32(t.size))
		out, _ = bsoncore.AppendDocumentEnd(out, eidx)
		addDisamb(t.path)
	}
	out, _ = bsoncore.AppendArrayEnd(out, tidx)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	dout, _ = bsoncore.AppendDocumentEnd(dout, didx)
	return out, dout
}

func withComp(p []pathComp, c pathComp) []pathComp {
	out := make([]pathComp, len(p), len(p)+1)
	copy(out, p)
	return append(out, c)
}

// sizeOfDeltaMetadata is what a real server adds to a diff's size before
// deciding that the delta is worth logging rather than the whole document.
const sizeOfDeltaMetadata = 15

// DiffDocs derives the updateDescription of a pipeline-style update the
// way a real server does: it diffs the old and new documents (nested
// documents and arrays recursively, a shrunk array as a truncation) and
// gives up when the delta would not be smaller than the new document, in
// which case the server logs a replacement (ok == false).
func DiffDocs(oldDoc, newDoc bsoncore.Document) (u *UpdateDesc, ok bool) {
	u = &UpdateDesc{}
	size, ok := diffDoc(u, nil, oldDoc, newDoc)
	if !ok || size+sizeOfDeltaMetadata >= len(newDoc) {
		return nil, false
	}
	return u, true
}

// diffDoc appends the differences between two documents at path p and
// returns an estimate of the BSON size of the delta a real server logs
// ({d: {…}, u: {…}, i: {…}, s<field>: {…}}); ok is false when the delta
// would not be smaller than post.
func diffDoc(u *UpdateDesc, p []pathComp, pre, post bsoncore.Document) (int, bool) {
	preEls, _ := pre.Elements()
	postEls, _ := post.Elements()
	inPost := make(map[string]bool, len(postEls))
	for _, el := range postEls {
		inPost[el.Key()] = true
	}
	preByKey := make(map[string]bsoncore.Element, len(preEls))
	for _, el := range preEls {
		preByKey[el.Key()] = el
	}
	var (
		local   UpdateDesc
		dSize   int
		uSize   int
		iSize   int
		subSize int
		subs    []*UpdateDesc
	)
	// Walk both documents in order: a field present at the same position
	// in both is compared; others are deletions and insertions.
	i, j := 0, 0
	for i < len(preEls) && j < len(postEls) {
		a, b := preEls[i], postEls[j]
		if a.Key() != b.Key() {
			if !inPost[a.Key()] {
				local.removed = append(local.removed, withComp(p, pathComp{name: a.Key()}))
				dSize += 1 + len(a.Key()) + 1 + 1
			}
			i++
			continue
		}
		av, bv := a.Value(), b.Value()
		i++
		j++
		if av.Type == bv.Type && string(av.Data) == string(bv.Data) {
			continue
		}
		fp := withComp(p, pathComp{name: a.Key()})
		if sub, n, ok := diffNested(fp, av, bv); ok {
			subs = append(subs, sub)
			subSize += 1 + 1 + len(a.Key()) + 1 + n
			continue
		}
		local.updated = append(local.updated, descField{fp, bv})
		uSize += 1 + len(a.Key()) + 1 + len(bv.Data)
	}
	for ; i < len(preEls); i++ {
		if !inPost[preEls[i].Key()] {
			local.removed = append(local.removed, withComp(p, pathComp{name: preEls[i].Key()}))
			dSize += 1 + len(preEls[i].Key()) + 1 + 1
		}
	}
	// Fields of post not matched in order are insertions (a field that
	// moved is deleted and inserted again, so it is not a removal).
	var inserts []descField
	for ; j < len(postEls); j++ {
		el := postEls[j]
		inserts = append(inserts, descField{withComp(p, pathComp{name: el.Key()}), el.Value()})
		iSize += 1 + len(el.Key()) + 1 + len(el.Value().Data)
	}
	if len(inserts) > 0 {
		// A key inserted again is not removed.
		kept := local.removed[:0]
		for _, r := range local.removed {
			if !containsInsert(inserts, r) {
				kept = append(kept, r)
			}
		}
		local.removed = kept
	}
	size := 5
	if len(local.removed) > 0 {
		size += 1 + 2 + 5 + dSize
	}
	if uSize > 0 {
		size += 1 + 2 + 5 + uSize
	}
	if iSize > 0 {
		size += 1 + 2 + 5 + iSize
	}
	size += subSize
	if size >= len(post) {
		return size, false
	}
	u.removed = append(u.removed, local.removed...)
	u.updated = append(u.updated, local.updated...)
	u.updated = append(u.updated, inserts...)
	for _, s := range subs {
		u.removed = append(u.removed, s.removed...)
		u.updated = append(u.updated, s.updated...)
		u.truncated = append(u.truncated, s.truncated...)
	}
	return size, true
}

func containsInsert(ins []descField, p []pathComp) bool {
	k := joinComps(p)
	for _, f := range ins {
		if joinComps(f.path) == k {
			return true
		}
	}
	return false
}

// diffArray appends the differences between two arrays at path p: changed
// and appended elements by position, a shorter array as a truncation.
// diffNested diffs two documents or two arrays at path p into a new
// updateDesc; ok is false when the values are not both documents or both
// arrays, or the diff is no smaller than the new value.
func diffNested(p []pathComp, av, bv bsoncore.Value) (*UpdateDesc, int, bool) {
	if av.Type != bv.Type {
		return nil, 0, false
	}
	sub := &UpdateDesc{}
	switch av.Type {
	case bsoncore.TypeEmbeddedDocument:
		n, ok := diffDoc(sub, p, av.Data, bv.Data)
		return sub, n, ok
	case bsoncore.TypeArray:
		n, ok := diffArray(sub, p, av.Data, bv.Data)
		return sub, n, ok
	}
	return nil, 0, false
}

func diffArray(u *UpdateDesc, p []pathComp, pre, post bsoncore.Document) (int, bool) {
	preVals, _ := bsoncore.Array(pre).Values()
	postVals, _ := bsoncore.Array(post).Values()
	var local UpdateDesc
	var subs []*UpdateDesc
	size := 5 + 1 + 2 + 1 // {a: true}
	for i := 0; i < len(postVals); i++ {
		bv := postVals[i]
		ip := withComp(p, pathComp{idx: i, isIdx: true})
		key := 1 + len(strconv.Itoa(i))
		if i < len(preVals) {
			av := preVals[i]
			if av.Type == bv.Type && string(av.Data) == string(bv.Data) {
				continue
			}
			if sub, n, ok := diffNested(ip, av, bv); ok {
				subs = append(subs, sub)
				size += 1 + key + 1 + n
				continue
			}
		}
		local.updated = append(local.updated, descField{ip, bv})
		size += 1 + key + 1 + len(bv.Data)
	}
	if len(preVals) > len(postVals) {
		local.truncated = append(local.truncated, truncation{path: p, size: len(postVals)})
		size += 1 + 2 + 4
	}
	if size >= len(post) {
		return size, false
	}
	u.truncated = append(u.truncated, local.truncated...)
	u.updated = append(u.updated, local.updated...)
	for _, s := range subs {
		u.removed = append(u.removed, s.removed...)
		u.updated = append(u.updated, s.updated...)
		u.truncated = append(u.truncated, s.truncated...)
	}
	return size, true
}
