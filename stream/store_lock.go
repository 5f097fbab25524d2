package stream

import "errors"

// ErrStreamInUse is returned by Watch when the store's checkpoint of
// Options.Name is held by another consumer: for a FileStore, another
// process (or another Stream of this one) has the checkpoint file's lock.
// The error wraps it with the stream name and what holds it.
var ErrStreamInUse = errors.New("changestream: the stream is in use by another consumer")

// storeLocker is a TokenStore that can hold a stream name for one consumer
// at a time. Watch calls lock before it loads the checkpoint and the
// stream calls the returned unlock when it is closed.
type storeLocker interface {
	lock(name string) (unlock func() error, err error)
}
