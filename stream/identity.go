package stream

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Identity says which stream a checkpoint belongs to: what it watches and
// which events arrive. Watch computes the identity of the stream it opens,
// stamps it on every checkpoint it saves, and refuses a saved checkpoint
// whose identity differs (a *CheckpointMismatchError). The zero Identity
// means "unknown": a checkpoint saved by an older version of this package,
// or by a program that wrote it itself; Watch accepts such a checkpoint and
// stamps the identity on the next save.
type Identity struct {
	// Target is what the stream watches: "deployment" for a *mongo.Client,
	// "database <db>" for a *mongo.Database, "collection <db>.<coll>" for a
	// *mongo.Collection. It is empty for any other Watcher, whose target
	// this package cannot see; then only the fingerprint is compared.
	Target string

	// Fingerprint is "v1:" and the hex SHA-256 of the pipeline passed to
	// Watch and of the driver's change-stream options that change which
	// events arrive or what they hold: fullDocument,
	// fullDocumentBeforeChange, showExpandedEvents, collation and the
	// custom options. Options that only change how events are fetched or
	// where the stream starts (batchSize, maxAwaitTime, comment,
	// resumeAfter, startAfter, startAtOperationTime) and
	// Options.SplitEvents are not part of it. The fields of every document
	// in the pipeline are sorted before hashing, so that a pipeline written
	// with bson.M hashes the same at every run; two pipelines that differ
	// only in the order of fields of one document therefore share a
	// fingerprint.
	Fingerprint string
}

// IsZero reports whether id is the unknown identity.
func (id Identity) IsZero() bool { return id == Identity{} }

// String describes id for log lines and errors.
func (id Identity) String() string {
	if id.IsZero() {
		return "unknown stream"
	}
	t := id.Target
	if t == "" {
		t = "unknown target"
	}
	return t + " with pipeline " + id.Fingerprint
}

// identityVersion is the version of the identity record the stores write
// (the "v" field of a CollectionStore document's and a FileStore file's
// "identity" object).
const identityVersion = 1

// fingerprintPrefix starts every fingerprint of the current scheme.
const fingerprintPrefix = "v1:"

// ErrCheckpointMismatch is matched by errors.Is for a
// *CheckpointMismatchError.
var ErrCheckpointMismatch = errors.New("changestream: the checkpoint belongs to another stream")

// CheckpointMismatchError is returned by Watch when the checkpoint saved
// under Options.Name was saved by a stream with another identity: another
// namespace, another pipeline, other options that change which events
// arrive. Resuming from it would skip or repeat events of this stream
// silently, so Watch refuses. Give the stream its own Name; or, when the
// pipeline changed on purpose and the stream should go on from the old
// position, set Options.AcceptChangedPipeline (the target must still be the
// same).
type CheckpointMismatchError struct {
	// Stream is Options.Name.
	Stream string
	// Saved is the identity stored with the checkpoint.
	Saved Identity
	// Current is the identity of the stream Watch was asked to open.
	Current Identity
}

// Error describes both identities.
func (e *CheckpointMismatchError) Error() string {
	what := "pipeline or change-stream options"
	if e.Saved.Target != e.Current.Target {
		what = "target"
	}
	return fmt.Sprintf("changestream: the checkpoint of stream %q was saved by another stream (different %s): saved by %s, this stream is %s; use another Options.Name for this stream",
		e.Stream, what, e.Saved, e.Current)
}

// Is makes errors.Is(err, ErrCheckpointMismatch) true.
func (e *CheckpointMismatchError) Is(target error) bool { return target == ErrCheckpointMismatch }

// targetOf names what target watches.
func targetOf(target Watcher) string {
	switch t := target.(type) {
	case *mongo.Client:
		return "deployment"
	case *mongo.Database:
		return "database " + t.Name()
	case *mongo.Collection:
		return "collection " + t.Database().Name() + "." + t.Name()
	}
	return ""
}

// identityOf computes the identity of a stream on target with pipeline (as
// the user passed it, before SplitEvents) and the driver's options.
func identityOf(target Watcher, pipeline any, csOpts []options.Lister[options.ChangeStreamOptions]) (Identity, error) {
	var o options.ChangeStreamOptions
	for _, l := range csOpts {
		if l == nil {
			continue
		}
		for _, set := range l.List() {
			if set != nil {
				_ = set(&o)
			}
		}
	}
	doc := bson.D{{Key: "pipeline", Value: pipeline}}
	if o.FullDocument != nil {
		doc = append(doc, bson.E{Key: "fullDocument", Value: string(*o.FullDocument)})
	}
	if o.FullDocumentBeforeChange != nil {
		doc = append(doc, bson.E{Key: "fullDocumentBeforeChange", Value: string(*o.FullDocumentBeforeChange)})
	}
	if o.ShowExpandedEvents != nil {
		doc = append(doc, bson.E{Key: "showExpandedEvents", Value: *o.ShowExpandedEvents})
	}
	if o.Collation != nil {
		doc = append(doc, bson.E{Key: "collation", Value: o.Collation})
	}
	if len(o.Custom) > 0 {
		doc = append(doc, bson.E{Key: "custom", Value: o.Custom})
	}
	if len(o.CustomPipeline) > 0 {
		doc = append(doc, bson.E{Key: "customPipeline", Value: o.CustomPipeline})
	}
	raw, err := bson.Marshal(doc)
	if err != nil {
		return Identity{}, fmt.Errorf("changestream: the pipeline or change-stream options cannot be encoded as BSON: %w", err)
	}
	h := sha256.New()
	if err := canonical(h, bson.Raw(raw), 0); err != nil {
		return Identity{}, fmt.Errorf("changestream: fingerprint of the pipeline: %w", err)
	}
	return Identity{Target: targetOf(target), Fingerprint: fingerprintPrefix + hex.EncodeToString(h.Sum(nil))}, nil
}

// canonical writes doc to w with the fields of every document sorted by
// name (arrays keep their order): each element as type byte, name, NUL,
// and the value's bytes, or the canonical form of a nested document.
func canonical(w interface{ Write([]byte) (int, error) }, doc bson.Raw, depth int) error {
	if depth > 200 {
		return errors.New("nested too deeply")
	}
	elems, err := doc.Elements()
	if err != nil {
		return err
	}
	slices.SortStableFunc(elems, func(a, b bson.RawElement) int { return strings.Compare(a.Key(), b.Key()) })
	for _, e := range elems {
		if err := canonicalElem(w, e.Key(), e.Value(), depth); err != nil {
			return err
		}
	}
	return nil
}

// canonicalElem writes one element; see canonical.
func canonicalElem(w interface{ Write([]byte) (int, error) }, key string, v bson.RawValue, depth int) error {
	w.Write([]byte{byte(v.Type)})
	w.Write([]byte(key))
	w.Write([]byte{0})
	switch v.Type {
	case bson.TypeEmbeddedDocument:
		w.Write([]byte{'{'})
		if err := canonical(w, v.Document(), depth+1); err != nil {
			return err
		}
		w.Write([]byte{'}'})
	case bson.TypeArray:
		vals, err := v.Array().Values()
		if err != nil {
			return err
		}
		w.Write([]byte{'['})
		for _, av := range vals {
			if err := canonicalElem(w, "", av, depth+1); err != nil {
				return err
			}
		}
		w.Write([]byte{']'})
	default:
		w.Write(v.Value)
	}
	return nil
}

// checkIdentity compares the identity saved with a checkpoint to the
// stream's. A zero saved identity is accepted.
func checkIdentity(name string, saved, current Identity, acceptChanged bool) error {
	if saved.IsZero() || saved == current {
		return nil
	}
	if acceptChanged && saved.Target == current.Target {
		return nil
	}
	return &CheckpointMismatchError{Stream: name, Saved: saved, Current: current}
}
