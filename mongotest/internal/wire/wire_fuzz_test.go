package wire

import (
	"bytes"
	"testing"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
)

// FuzzParseMessage feeds arbitrary frames to the frame reader and parser:
// they must never panic, and what they accept must be valid BSON.
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Add([]byte{21, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xdd, 7, 0, 0, 0})
	f.Fuzz(func(t *testing.T, frame []byte) {
		if got, err := ReadFrame(bytes.NewReader(frame), nil, nil); err == nil && !bytes.Equal(got, frame[:len(got)]) {
			t.Fatalf("readFrame returned bytes it was not given")
		}
		m, err := Parse(frame)
		if err != nil {
			return
		}
		if m == nil || m.Cmd == nil {
			t.Fatal("parseMessage: no error and no command")
		}
		if err := bsonutil.Validate(m.Cmd); err != nil {
			t.Fatalf("parseMessage accepted an invalid command: %v", err)
		}
	})
}
