package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"syscall"
	"testing"
	"unsafe"
)

// openPTY opens a pseudo-terminal: the controlling side, which reads what
// is written to the terminal, and the terminal itself.
func openPTY(t *testing.T) (control, term *os.File) {
	t.Helper()
	control, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, control.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		control.Close()
		t.Fatalf("unlocking the pseudo-terminal: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, control.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		control.Close()
		t.Fatalf("naming the pseudo-terminal: %v", e)
	}
	term, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		control.Close()
		t.Fatal(err)
	}
	return control, term
}

// TestStatusLineOnATerminal: with stderr on a real pseudo-terminal,
// changetail rewrites a status line of events, events/s and lag there, and
// prints the count when it stops; stdout, not a terminal, gets the events
// alone.
func TestStatusLineOnATerminal(t *testing.T) {
	control, term := openPTY(t)
	screen := newTextWriter()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(screen, control) // ends with EIO once term is closed
	}()
	defer func() {
		term.Close()
		<-copied
		control.Close()
	}()

	d := newDeployment(t)
	since := d.since()
	ctx, stop := context.WithCancel(d.ctx)
	defer stop()
	out := newTextWriter()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-uri", d.srv.URI(), "-db", "shop", "-since", since, "-format", "op"}, out, term)
	}()
	d.insert(t, 1, 2)
	out.waitFor(t, d.ctx, done, "\n", 2)
	// The line is rewritten in place: carriage return, erase, figures.
	screen.waitFor(t, d.ctx, done, "\r\x1b[K2 events  ", 1)
	stop() // Ctrl-C
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %q", code, screen)
	}
	term.Close()
	<-copied
	got := screen.String()
	if !regexp.MustCompile(`\r\x1b\[K2 events  \d+\.\d events/s  (lag \ds|caught up)`).MatchString(got) {
		t.Errorf("no status line with events/s and lag on the terminal: %q", got)
	}
	if !regexp.MustCompile(`\r\x1b\[Kchangetail: 2 events\r\n$`).MatchString(got) {
		t.Errorf("the terminal does not end with the count on a cleared line: %q", got)
	}
	if want := "insert shop.orders {\"_id\":1}\ninsert shop.orders {\"_id\":2}\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
}
