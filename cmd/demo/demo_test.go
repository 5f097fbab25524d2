package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the demo as go run ./cmd/demo does and checks that every
// write's event arrived across the three faults, that the stream mended
// the faults by itself, and that the consumer's second stream resumed from
// the checkpoint its first one saved, repeating only the event that was
// handled but not committed when the consumer crashed.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Second)
	defer cancel()
	var out bytes.Buffer
	sum, err := run(ctx, &out, Config{})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if sum.Lost != 0 || sum.Writes == 0 || sum.Events != sum.Writes+sum.Duplicates || sum.Faults != 3 {
		t.Fatalf("summary %+v, want writes > 0, 0 lost, 3 faults\n%s", sum, out.String())
	}
	if sum.Duplicates != 1 {
		t.Errorf("%d duplicates, want 1 (the event handled when the consumer crashed)\n%s", sum.Duplicates, out.String())
	}
	if sum.Streams != 2 {
		t.Errorf("%d streams, want 2: the network fault and the restart are mended inside the first\n%s", sum.Streams, out.String())
	}
	if sum.Resumes+sum.Rewatches < 1 {
		t.Errorf("Stats show no resume and no new watch across a restart that killed the cursor\n%s", out.String())
	}
	if sum.Elapsed > 10*time.Second {
		t.Errorf("the demo took %v, want under 10s", sum.Elapsed)
	}
	for _, want := range []string{
		"-- stream 1: no checkpoint yet",
		"-- network fault",
		"-- server restart",
		"-- consumer crash",
		"  insert  order 1 ",
		"  delete  order 3",
		sum.String(),
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	crashed := regexp.MustCompile(`-- stream 1 crashed: .*; last checkpoint (\S+)`).FindStringSubmatch(out.String())
	resumed := regexp.MustCompile(`-- stream 2: resuming after checkpoint (\S+)`).FindStringSubmatch(out.String())
	if crashed == nil || resumed == nil || crashed[1] != resumed[1] {
		t.Errorf("stream 2 does not resume from stream 1's last checkpoint (%q, %q):\n%s", crashed, resumed, out.String())
	}
	lines := len(regexp.MustCompile(`(?m)^  \S`).FindAllString(out.String(), -1))
	if lines != sum.Events {
		t.Errorf("%d event lines for %d events", lines, sum.Events)
	}
}

// TestTally checks the check itself: a write without its event is lost, and
// an event seen twice is a duplicate.
func TestTally(t *testing.T) {
	tests := []struct {
		name               string
		expect, see        []string
		lost, dups, events int
	}{
		{"all seen", []string{"a", "b"}, []string{"a", "b"}, 0, 0, 2},
		{"one missing", []string{"a", "b"}, []string{"a"}, 1, 0, 1},
		{"duplicate", []string{"a"}, []string{"a", "a"}, 0, 1, 2},
		{"unexpected event", []string{"a"}, []string{"z"}, 1, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := newTally()
			for _, k := range tt.expect {
				tl.expect(k)
			}
			for _, k := range tt.see {
				tl.saw(k)
			}
			s := tl.summary()
			if s.Lost != tt.lost || s.Duplicates != tt.dups || s.Events != tt.events || s.Writes != len(tt.expect) {
				t.Errorf("summary %+v, want lost %d, duplicates %d, events %d", s, tt.lost, tt.dups, tt.events)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if got := tl.waitSeen(ctx, time.Second); got != (tt.lost == 0) {
				t.Errorf("waitSeen = %v with %d lost", got, tt.lost)
			}
		})
	}
}
