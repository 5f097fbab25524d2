package unified

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// check compares an operation's outcome with its expectations.
func (r *testRun) check(m *matcher, op *Operation, res bson.RawValue, err error) error {
	var ee *expectationError
	if errors.As(err, &ee) {
		return ee.err
	}
	if op.IgnoreResultAndError {
		return nil
	}
	if op.ExpectError != nil {
		if err == nil {
			return fmt.Errorf("expected an error, got result %s", res)
		}
		return checkError(m, op.ExpectError, res, err)
	}
	if err != nil {
		return fmt.Errorf("unexpected error: %w", err)
	}
	if op.ExpectResult.Type != 0 {
		if res.Type == 0 {
			// An operation without a result value (such as a write that
			// returns nothing) matches only what an absent value matches.
			if err := m.matchOperatorAbsent(op.ExpectResult); err != nil {
				return fmt.Errorf("expected a result, got none: %w", err)
			}
			return nil
		}
		if err := m.matchRoot(op.ExpectResult, res); err != nil {
			return fmt.Errorf("result %s: %w", res, err)
		}
	}
	return nil
}

// errorDetails are the codes, code names, labels and raw reply of a
// server error, whatever its Go type.
type errorDetails struct {
	codes  []int
	names  []string
	labels []string
	raw    bson.Raw
}

func serverDetails(err error) (errorDetails, bool) {
	var d errorDetails
	var ce mongo.CommandError
	var we mongo.WriteException
	var bwe mongo.BulkWriteException
	var cbe mongo.ClientBulkWriteException
	switch {
	case errors.As(err, &ce):
		d.codes, d.names, d.labels, d.raw = []int{int(ce.Code)}, []string{ce.Name}, ce.Labels, ce.Raw
	case errors.As(err, &we):
		if wce := we.WriteConcernError; wce != nil {
			d.codes, d.names = append(d.codes, wce.Code), append(d.names, wce.Name)
		}
		for _, e := range we.WriteErrors {
			d.codes = append(d.codes, e.Code)
		}
		d.labels, d.raw = we.Labels, we.Raw
	case errors.As(err, &bwe):
		if wce := bwe.WriteConcernError; wce != nil {
			d.codes, d.names = append(d.codes, wce.Code), append(d.names, wce.Name)
		}
		for _, e := range bwe.WriteErrors {
			d.codes = append(d.codes, e.Code)
			d.raw = e.Raw
		}
		d.labels = bwe.Labels
	case errors.As(err, &cbe):
		if e := cbe.WriteError; e != nil {
			d.codes, d.raw = append(d.codes, e.Code), e.Raw
			var inner mongo.CommandError
			if errors.As(e, &inner) {
				d.labels = inner.Labels
			}
		}
		for _, e := range cbe.WriteConcernErrors {
			d.codes, d.names = append(d.codes, e.Code), append(d.names, e.Name)
		}
	default:
		return d, false
	}
	return d, true
}

func checkError(m *matcher, ee *ExpectError, res bson.RawValue, err error) error {
	details, isServer := serverDetails(err)
	if ee.IsClientError != nil {
		// The format counts network errors as client errors.
		isClient := !isServer || mongo.IsNetworkError(err)
		if *ee.IsClientError != isClient {
			return fmt.Errorf("isClientError %v, got %T: %v", *ee.IsClientError, err, err)
		}
	}
	if ee.IsTimeoutError != nil && *ee.IsTimeoutError != mongo.IsTimeout(err) {
		return fmt.Errorf("isTimeoutError %v, got %v", *ee.IsTimeoutError, err)
	}
	if ee.ErrorContains != "" && !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(ee.ErrorContains)) {
		return fmt.Errorf("error %q does not contain %q", err, ee.ErrorContains)
	}
	if !isServer && (ee.ErrorCode != nil || ee.ErrorCodeName != "" || ee.ErrorLabelsContain != nil || ee.ErrorLabelsOmit != nil) {
		return fmt.Errorf("expected a server error, got %T: %v", err, err)
	}
	if ee.ErrorCode != nil && !slices.Contains(details.codes, int(*ee.ErrorCode)) {
		return fmt.Errorf("expected error code %d, got %v", *ee.ErrorCode, err)
	}
	if ee.ErrorCodeName != "" && !slices.Contains(details.names, ee.ErrorCodeName) {
		return fmt.Errorf("expected error code name %s, got %v", ee.ErrorCodeName, err)
	}
	for _, l := range ee.ErrorLabelsContain {
		if !slices.Contains(details.labels, l) {
			return fmt.Errorf("expected error label %s, got %v (labels %v)", l, err, details.labels)
		}
	}
	for _, l := range ee.ErrorLabelsOmit {
		if slices.Contains(details.labels, l) {
			return fmt.Errorf("expected no error label %s, got %v", l, err)
		}
	}
	if ee.ExpectResult.Type != 0 {
		if res.Type == 0 {
			if merr := m.matchOperatorAbsent(ee.ExpectResult); merr != nil {
				return fmt.Errorf("expectError.expectResult: no partial result with %v: %w", err, merr)
			}
			return nil
		}
		if err := m.matchRoot(ee.ExpectResult, res); err != nil {
			return fmt.Errorf("expectError.expectResult %s: %w", res, err)
		}
	}
	if ee.ErrorResponse != nil {
		if details.raw == nil {
			return fmt.Errorf("expected an error response, got %v", err)
		}
		if err := m.matchRoot(docValue(ee.ErrorResponse), docValue(details.raw)); err != nil {
			return fmt.Errorf("errorResponse %s: %w", details.raw, err)
		}
	}
	if ee.WriteErrors != nil || ee.WriteConcernErrors.Type != 0 {
		var cbe mongo.ClientBulkWriteException
		if !errors.As(err, &cbe) {
			return fmt.Errorf("expected a client bulk write error, got %T: %v", err, err)
		}
		if ee.WriteErrors != nil {
			got := bson.D{}
			for i := range 1 << 16 {
				if len(got) == len(cbe.WriteErrors) {
					break
				}
				if e, ok := cbe.WriteErrors[i]; ok {
					got = append(got, bson.E{Key: strconv.Itoa(i), Value: bson.D{{Key: "code", Value: int32(e.Code)}, {Key: "message", Value: e.Message}}})
				}
			}
			gv, _ := toValue(got)
			if err := m.match(docValue(ee.WriteErrors), gv, false, "writeErrors"); err != nil {
				return err
			}
		}
		if ee.WriteConcernErrors.Type != 0 {
			got := bson.A{}
			for _, e := range cbe.WriteConcernErrors {
				got = append(got, bson.D{{Key: "code", Value: int32(e.Code)}, {Key: "message", Value: e.Message}})
			}
			gv, _ := toValue(got)
			if err := m.match(ee.WriteConcernErrors, gv, true, "writeConcernErrors"); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkEvents compares a client's recorded events with the expected
// ones.
func (r *testRun) checkEvents(m *matcher, ee *ExpectedEvents) error {
	ce, err := entity[*clientEntity](r.ents, ee.Client)
	if err != nil {
		return err
	}
	switch ee.EventType {
	case "", "command":
		return checkCommandEvents(m, ce.commandEvents(), ee)
	case "cmap":
		return checkCMAPEvents(ce.cmapEvents(), ee)
	}
	return fmt.Errorf("unsupported eventType %q", ee.EventType)
}

func checkCommandEvents(m *matcher, got []commandEvent, ee *ExpectedEvents) error {
	if len(got) < len(ee.Events) || (!ee.IgnoreExtraEvents && len(got) != len(ee.Events)) {
		return fmt.Errorf("expected %d events, got %d: %s", len(ee.Events), len(got), describe(got))
	}
	for i, want := range ee.Events {
		elems, err := want.Elements()
		if err != nil || len(elems) != 1 {
			return fmt.Errorf("event %d: malformed expected event %s", i, want)
		}
		kind := elems[0].Key()
		spec := elems[0].Value().Document()
		ev := got[i]
		if kind != ev.kind {
			return fmt.Errorf("event %d: got %s %s, expected %s (events: %s)", i, ev.kind, ev.name, kind, describe(got))
		}
		fields, _ := spec.Elements()
		for _, f := range fields {
			v := f.Value()
			switch f.Key() {
			case "commandName":
				if v.StringValue() != ev.name {
					return fmt.Errorf("event %d: commandName %s, expected %s (events: %s)", i, ev.name, v.StringValue(), describe(got))
				}
			case "databaseName":
				if v.StringValue() != ev.databaseName {
					return fmt.Errorf("event %d: databaseName %s, expected %s", i, ev.databaseName, v.StringValue())
				}
			case "command":
				if err := m.matchRoot(v, docValue(ev.command)); err != nil {
					return fmt.Errorf("event %d (%s): %w; command %s", i, ev.name, err, ev.command)
				}
			case "reply":
				if err := m.matchRoot(v, docValue(ev.reply)); err != nil {
					return fmt.Errorf("event %d (%s): %w; reply %s", i, ev.name, err, ev.reply)
				}
			case "hasServiceId":
				if v.Boolean() != ev.hasServiceID {
					return fmt.Errorf("event %d: hasServiceId %v, expected %v", i, ev.hasServiceID, v.Boolean())
				}
			case "hasServerConnectionId":
				if v.Boolean() != ev.hasConnID {
					return fmt.Errorf("event %d: hasServerConnectionId %v, expected %v", i, ev.hasConnID, v.Boolean())
				}
			default:
				return fmt.Errorf("event %d: unsupported expected field %q", i, f.Key())
			}
		}
	}
	return nil
}

func checkCMAPEvents(got []cmapEvent, ee *ExpectedEvents) error {
	names := make([]string, len(got))
	for i, e := range got {
		names[i] = e.kind
	}
	if len(got) < len(ee.Events) || (!ee.IgnoreExtraEvents && len(got) != len(ee.Events)) {
		return fmt.Errorf("expected %d cmap events, got %d: %v", len(ee.Events), len(got), names)
	}
	for i, want := range ee.Events {
		elems, err := want.Elements()
		if err != nil || len(elems) != 1 {
			return fmt.Errorf("cmap event %d: malformed expected event %s", i, want)
		}
		if elems[0].Key() != got[i].kind {
			return fmt.Errorf("cmap event %d: got %s, expected %s (events: %v)", i, got[i].kind, elems[0].Key(), names)
		}
		fields, _ := elems[0].Value().Document().Elements()
		for _, f := range fields {
			switch f.Key() {
			case "reason":
				if f.Value().StringValue() != got[i].reason {
					return fmt.Errorf("cmap event %d: reason %q, expected %q", i, got[i].reason, f.Value().StringValue())
				}
			default:
				return fmt.Errorf("cmap event %d: unsupported expected field %q", i, f.Key())
			}
		}
	}
	return nil
}

func describe(evs []commandEvent) string {
	names := make([]string, len(evs))
	for i, e := range evs {
		names[i] = strings.TrimSuffix(strings.TrimPrefix(e.kind, "command"), "Event") + ":" + e.name
	}
	return "[" + strings.Join(names, " ") + "]"
}
