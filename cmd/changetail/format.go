package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// formatPresets are the named -format templates.
var formatPresets = []struct{ name, template, what string }{
	{"json", "%e", "the whole event as Extended JSON (the default)"},
	{"op", "%o %n %k", "operationType, namespace and documentKey: insert shop.orders {\"_id\":1}"},
	{"doc", "%d", "the full document only (null for events without one: use -full-document updateLookup for updates)"},
}

// formatDirectives are what a -format template may contain after a %.
var formatDirectives = []struct {
	c    byte
	what string
}{
	{'e', "the whole event"},
	{'o', "operationType"},
	{'n', "namespace: db.coll, or db for a database event"},
	{'k', "documentKey"},
	{'d', "fullDocument"},
	{'b', "fullDocumentBeforeChange"},
	{'u', "updateDescription"},
	{'t', "clusterTime as seconds.increment"},
	{'w', "wallTime, RFC 3339 in UTC"},
	{'r', "the resume token (_id._data)"},
	{'%', "a percent sign"},
}

// formatHelp describes -format for the usage text.
func formatHelp() string {
	var b strings.Builder
	b.WriteString("how to print each event (a newline follows each): a name,")
	for _, p := range formatPresets {
		fmt.Fprintf(&b, "\n\t%s: %s (%s)", p.name, p.what, p.template)
	}
	b.WriteString("\nor a template of text and these directives:")
	for _, d := range formatDirectives {
		fmt.Fprintf(&b, "\n\t%%%c: %s", d.c, d.what)
	}
	b.WriteString("\n\t\\t, \\n, \\\\: a tab, a newline, a backslash")
	b.WriteString("\nDocuments are Extended JSON (-canonical applies), null when the event has none; other fields the event lacks print nothing.")
	return b.String()
}

// piece is a part of a template: literal text, then a directive (0 for
// none).
type piece struct {
	text string
	dir  byte
}

// eventFormat prints events after a -format template.
type eventFormat struct {
	pieces    []piece
	canonical bool
}

// parseFormat reads a -format value: a preset name or a template.
func parseFormat(s string, canonical bool) (*eventFormat, error) {
	for _, p := range formatPresets {
		if s == p.name {
			s = p.template
		}
	}
	if !strings.ContainsAny(s, `%\`) {
		names := make([]string, len(formatPresets))
		for i, p := range formatPresets {
			names[i] = p.name
		}
		return nil, fmt.Errorf("want one of %s, or a template with %% directives such as '%%o %%k'", strings.Join(names, ", "))
	}
	f := &eventFormat{canonical: canonical}
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			if i+1 == len(s) {
				return nil, fmt.Errorf("the template ends with a lone %%")
			}
			i++
			d := s[i]
			known := false
			for _, fd := range formatDirectives {
				known = known || fd.c == d
			}
			if !known {
				return nil, fmt.Errorf("unknown directive %%%c", d)
			}
			if d == '%' {
				lit.WriteByte('%')
				continue
			}
			f.pieces = append(f.pieces, piece{text: lit.String(), dir: d})
			lit.Reset()
		case '\\':
			if i+1 == len(s) {
				return nil, fmt.Errorf("the template ends with a lone backslash")
			}
			i++
			switch s[i] {
			case 'n':
				lit.WriteByte('\n')
			case 't':
				lit.WriteByte('\t')
			case '\\':
				lit.WriteByte('\\')
			default:
				return nil, fmt.Errorf("unknown escape \\%c", s[i])
			}
		default:
			lit.WriteByte(c)
		}
	}
	if lit.Len() > 0 {
		f.pieces = append(f.pieces, piece{text: lit.String()})
	}
	return f, nil
}

// append appends ev as the template says, without the final newline.
func (f *eventFormat) append(b []byte, ev bson.Raw) ([]byte, error) {
	for _, p := range f.pieces {
		b = append(b, p.text...)
		var err error
		switch p.dir {
		case 0:
		case 'e':
			b, err = f.appendJSON(b, ev)
		case 'o':
			op, _ := ev.Lookup("operationType").StringValueOK()
			b = append(b, op...)
		case 'n':
			db, _ := ev.Lookup("ns", "db").StringValueOK()
			coll, _ := ev.Lookup("ns", "coll").StringValueOK()
			b = append(b, db...)
			if coll != "" {
				b = append(b, '.')
				b = append(b, coll...)
			}
		case 'k':
			b, err = f.appendField(b, ev, "documentKey")
		case 'd':
			b, err = f.appendField(b, ev, "fullDocument")
		case 'b':
			b, err = f.appendField(b, ev, "fullDocumentBeforeChange")
		case 'u':
			b, err = f.appendField(b, ev, "updateDescription")
		case 't':
			if t, i, ok := ev.Lookup("clusterTime").TimestampOK(); ok {
				b = strconv.AppendUint(b, uint64(t), 10)
				b = append(b, '.')
				b = strconv.AppendUint(b, uint64(i), 10)
			}
		case 'w':
			if ms, ok := ev.Lookup("wallTime").DateTimeOK(); ok {
				b = time.UnixMilli(ms).UTC().AppendFormat(b, time.RFC3339Nano)
			}
		case 'r':
			data, _ := ev.Lookup("_id", "_data").StringValueOK()
			b = append(b, data...)
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// appendField appends the document field name of ev as Extended JSON, or
// null when ev lacks it or it is null.
func (f *eventFormat) appendField(b []byte, ev bson.Raw, name string) ([]byte, error) {
	v, err := ev.LookupErr(name)
	if err != nil || v.Type == bson.TypeNull {
		return append(b, "null"...), nil
	}
	if doc, ok := v.DocumentOK(); ok {
		return f.appendJSON(b, doc)
	}
	return append(b, "null"...), nil
}

func (f *eventFormat) appendJSON(b []byte, doc bson.Raw) ([]byte, error) {
	j, err := bson.MarshalExtJSON(doc, f.canonical, false)
	if err != nil {
		return b, fmt.Errorf("cannot print an event as Extended JSON: %w", err)
	}
	return append(b, j...), nil
}
