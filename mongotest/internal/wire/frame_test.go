package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

// halfFrame is the start of a frame whose header announces size bytes, of
// which only sent arrive.
func halfFrame(size, sent int) []byte {
	b := make([]byte, sent)
	binary.LittleEndian.PutUint32(b, uint32(size))
	return b
}

// allocated returns how many bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A header announcing a large frame costs memory only as the body
// arrives: a client that sends 40 MB of header and a few kilobytes does
// not make the server allocate 40 MB.
func TestReadFrameGrowsAsTheBodyArrives(t *testing.T) {
	var err error
	n := allocated(func() {
		_, err = ReadFrame(bytes.NewReader(halfFrame(40<<20, 4096)), nil, nil)
	})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadFrame = %v, want io.ErrUnexpectedEOF", err)
	}
	if n > 1<<20 {
		t.Errorf("reading 4 KiB of a frame announced as 40 MiB allocated %d bytes", n)
	}
	whole := halfFrame(3<<20, 3<<20)
	got, err := ReadFrame(bytes.NewReader(whole), nil, nil)
	if err != nil || !bytes.Equal(got, whole) {
		t.Fatalf("ReadFrame of a whole 3 MiB frame: %d bytes, %v", len(got), err)
	}
}

// The bytes buffered in unfinished frames across connections are bounded:
// a frame that would take the budget past its size fails, and a frame
// read to its end gives back what it took.
func TestReadFrameBudget(t *testing.T) {
	b := NewBudget(1 << 20)
	// A stalled client holds what its frame buffered so far.
	stalled, release := io.Pipe()
	defer release.Close()
	held := make(chan error, 1)
	go func() {
		_, err := ReadFrame(stalled, b, nil)
		held <- err
	}()
	if _, err := release.Write(halfFrame(40<<20, 800<<10)); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFrame(bytes.NewReader(halfFrame(2<<20, 2<<20)), b, nil)
	var fe *FrameError
	if !errors.As(err, &fe) {
		t.Fatalf("second frame over the budget: %v, want a *FrameError", err)
	}
	release.Close()
	if err := <-held; err == nil {
		t.Fatal("the stalled frame was read whole")
	}
	// With the stalled frame gone, its budget is back.
	if _, err := ReadFrame(bytes.NewReader(halfFrame(900<<10, 900<<10)), b, nil); err != nil {
		t.Fatalf("frame within the budget: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader(halfFrame(900<<10, 900<<10)), b, nil); err != nil {
		t.Fatalf("second frame within the budget, after the first was read: %v", err)
	}
}

// started is called once a frame's header has arrived, so that the caller
// can bound the time the rest may take.
func TestReadFrameStarted(t *testing.T) {
	calls := 0
	whole := halfFrame(100, 100)
	if _, err := ReadFrame(bytes.NewReader(whole), nil, func() { calls++ }); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("started called %d times, want 1", calls)
	}
}
