package stream

import (
	"bytes"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// splitStage is the name of the pipeline stage that splits change events
// larger than 16 MiB into fragments.
const splitStage = "$changeStreamSplitLargeEvent"

// ErrSplitEvent is matched (with errors.Is) by every *SplitError.
var ErrSplitEvent = errors.New("changestream: the fragments of a split event did not arrive in order")

// SplitError reports fragments of a split change event
// ($changeStreamSplitLargeEvent) that cannot be joined into the whole event:
// a fragment is missing, repeated or out of order, another event arrived
// between two fragments, or the stream started in the middle of an event
// (from the token of a fragment that was not the last). The incomplete
// event is never delivered. The stream ends; its ResumeToken is still the
// token after the last whole event, so a new Watch from it reads the event
// again from its first fragment.
type SplitError struct {
	// Token names the event: the token of the first fragment received of
	// it, or of the offending document when no fragment came before.
	Token Token
	// Got is the token of the document that broke the sequence.
	Got Token
	// Fragment and Of are the splitEvent of that document; both are zero
	// when it was a whole event.
	Fragment, Of int32
	// Want is the fragment number that was expected next.
	Want int32
}

// Error describes the broken sequence, naming the event's token.
func (e *SplitError) Error() string {
	what := fmt.Sprintf("fragment %d of %d (token %s)", e.Fragment, e.Of, e.Got)
	if e.Of == 0 {
		what = fmt.Sprintf("a whole event (token %s)", e.Got)
	}
	return fmt.Sprintf("changestream: split event %s: got %s where fragment %d was expected; the incomplete event was not delivered", e.Token, what, e.Want)
}

// Is makes errors.Is(err, ErrSplitEvent) true.
func (e *SplitError) Is(target error) bool { return target == ErrSplitEvent }

// reassembler joins the fragments of split events. The zero value is ready;
// it holds memory only while an event is incomplete.
type reassembler struct {
	fields []byte // the fields of the fragments so far, without _id and splitEvent
	first  Token  // the first fragment's token (a copy)
	next   int32  // the fragment number expected next; 0: no event in progress
	of     int32
}

// pending reports whether fragments of an incomplete event are held: the
// stream's resume token must not move until the event is whole.
func (r *reassembler) pending() bool { return r.next != 0 }

// reset drops an incomplete event. A stream that opens a new driver stream
// from the token of the last whole event must call it: the event will come
// again from its first fragment.
func (r *reassembler) reset() { *r = reassembler{} }

// fragmentOf reads the splitEvent field of an event, whose fields are at:
// isFrag is false for a whole event.
func fragmentOf(raw []byte, at eventFields) (frag, of int32, isFrag bool, err error) {
	v := at.splitEvent.in(raw)
	if v.Type == 0 {
		return 0, 0, false, nil
	}
	se, err := splitEvent([]byte("splitEvent"), v)
	if err != nil {
		return 0, 0, true, err
	}
	return se.Fragment, se.Of, true, nil
}

// add takes the next document of the stream, which the caller may reuse
// after the call (it is copied). For a whole event it returns whole=false
// and no error when no split event is in progress: the caller goes on with
// the document as it is. For a fragment it returns the joined event
// (whole=true) once the last fragment came, and nothing before. The joined
// event has the last fragment's _id, then the fields of the fragments in
// order; splitEvent is dropped. at is where raw's fields are.
func (r *reassembler) add(raw []byte, at eventFields) (joined bson.Raw, err error) {
	frag, of, isFrag, err := fragmentOf(raw, at)
	id, _ := at.id.in(raw).DocumentOK()
	got := tokenOf(bson.Raw(id))
	if err != nil {
		r.reset()
		return nil, fmt.Errorf("changestream: event %s: %w", got, err)
	}
	if !isFrag {
		if r.pending() {
			return nil, r.broken(got, 0, 0)
		}
		return nil, nil
	}
	if id == nil {
		r.reset()
		return nil, errMissingID
	}
	want := r.next
	if want == 0 {
		want = 1
	}
	if frag != want || of < 1 || frag > of || (r.pending() && of != r.of) {
		return nil, r.broken(got, frag, of)
	}
	if frag == 1 {
		r.first = Token{raw: bytes.Clone(id)}
		r.of = of
	}
	rem := raw[4 : len(raw)-1]
	for len(rem) > 0 {
		el, rest, ok := bsoncore.ReadElement(rem)
		if !ok {
			r.reset()
			return nil, fmt.Errorf("changestream: split event %s: fragment %d is malformed BSON", got, frag)
		}
		rem = rest
		switch string(el.KeyBytes()) {
		case "_id", "splitEvent":
		default:
			r.fields = append(r.fields, el...)
		}
	}
	if frag < of {
		r.next = frag + 1
		return nil, nil
	}
	out := make([]byte, 0, 4+1+4+len(id)+len(r.fields)+1)
	idx, out := bsoncore.AppendDocumentStart(out)
	out = bsoncore.AppendDocumentElement(out, "_id", id)
	out = append(out, r.fields...)
	out, err = bsoncore.AppendDocumentEnd(out, idx)
	r.reset()
	if err != nil {
		return nil, fmt.Errorf("changestream: split event %s: %w", got, err)
	}
	return bson.Raw(out), nil
}

// broken reports a fragment sequence that cannot be completed and drops the
// incomplete event.
func (r *reassembler) broken(got Token, frag, of int32) error {
	e := &SplitError{Token: r.first, Got: Token{raw: bytes.Clone(got.raw)}, Fragment: frag, Of: of, Want: r.next}
	if !r.pending() {
		e.Token, e.Want = e.Got, 1
	}
	r.reset()
	return e
}

// join turns the driver's current document into an event the stream owns:
// a copy of a whole event, or, for a fragment, the joined event once its
// last fragment came (whole is false before). It runs on the goroutine that
// owns the driver's stream. at is where the event's fields are in raw.
func (s *Stream[T]) join(cur bson.Raw) (raw bson.Raw, at eventFields, whole bool, err error) {
	at = scanEventFields(cur)
	joined, err := s.split.add(cur, at)
	switch {
	case err != nil:
		return nil, at, false, err
	case joined != nil:
		return joined, scanEventFields(joined), true, nil
	case s.split.pending():
		return nil, at, false, nil
	}
	return s.own(cur), at, true, nil // a copy: the fields are where they were
}

// withSplitStage returns pipeline with the $changeStreamSplitLargeEvent
// stage appended, unless its last stage already is that stage. pipeline is
// a slice of stages, as the driver's Watch takes it; the stages are passed
// on as they are, so the client's registry still encodes them.
func withSplitStage(pipeline any) (any, error) {
	stages, err := pipelineStages(pipeline, 1)
	if err != nil {
		return nil, err
	}
	if n := len(stages); n > 0 {
		last, err := stageName(stages[n-1])
		if err != nil {
			return nil, err
		}
		if last == splitStage {
			return pipeline, nil
		}
	}
	return append(stages, bson.D{{Key: splitStage, Value: bson.D{}}}), nil
}

// stageName returns the first key of a pipeline stage.
func stageName(stage any) (string, error) {
	switch st := stage.(type) {
	case bson.D:
		if len(st) > 0 {
			return st[0].Key, nil
		}
		return "", nil
	case bson.M:
		for k := range st {
			return k, nil
		}
		return "", nil
	case map[string]any:
		for k := range st {
			return k, nil
		}
		return "", nil
	}
	raw, err := bson.Marshal(stage)
	if err != nil {
		return "", fmt.Errorf("changestream: cannot read the last pipeline stage: %w", err)
	}
	el, err := bsoncore.Document(raw).IndexErr(0)
	if err != nil {
		return "", nil
	}
	return el.Key(), nil
}
