package stream

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// SnapshotCheckpointVersion is the version of the snapshot record this
// package writes into a checkpoint and the only one it reads.
const SnapshotCheckpointVersion = 1

// SnapshotCheckpoint is the part of a Checkpoint that records a snapshot
// still under way (see Options.NoCheckpoint): the stream's Token is then the
// fixed point the change stream goes on from once the scan is done, and
// this record says how far the scan got. Every store of this package keeps
// it and reads it back; a store that does not know it must refuse such a
// checkpoint rather than drop it, or the rest of the snapshot would be
// skipped.
type SnapshotCheckpoint struct {
	// Version is SnapshotCheckpointVersion; zero means the current version
	// when saving.
	Version int

	// DB and Collection name the collection of the last document copied.
	// Collections are scanned in the order of (DB, Collection); those
	// before this one are done.
	DB, Collection string

	// LastID is the _id of the last document copied from Collection (the
	// scan reads in _id order and goes on after it).
	LastID bson.RawValue

	// Copied counts the documents copied so far, over every collection.
	Copied int64
}

// clone returns a deep copy of c, nil for nil.
func (c *SnapshotCheckpoint) clone() *SnapshotCheckpoint {
	if c == nil {
		return nil
	}
	d := *c
	d.LastID.Value = bytes.Clone(c.LastID.Value)
	return &d
}

// equal reports whether c and d record the same progress.
func (c *SnapshotCheckpoint) equal(d *SnapshotCheckpoint) bool {
	if c == nil || d == nil {
		return c == d
	}
	return c.version() == d.version() && c.DB == d.DB && c.Collection == d.Collection &&
		c.LastID.Type == d.LastID.Type && bytes.Equal(c.LastID.Value, d.LastID.Value) && c.Copied == d.Copied
}

func (c *SnapshotCheckpoint) version() int {
	if c.Version == 0 {
		return SnapshotCheckpointVersion
	}
	return c.Version
}

// check validates a snapshot record read from a store or given to Save.
func (c *SnapshotCheckpoint) check() error {
	switch {
	case c.version() > SnapshotCheckpointVersion:
		return fmt.Errorf("snapshot record version %d is newer than this library reads (%d)", c.Version, SnapshotCheckpointVersion)
	case c.version() != SnapshotCheckpointVersion:
		return fmt.Errorf("snapshot record version is %d, want %d", c.Version, SnapshotCheckpointVersion)
	case c.DB == "" || c.Collection == "":
		return errors.New("the snapshot record does not name its collection")
	case c.Copied < 0:
		return fmt.Errorf("the snapshot record's count of copied documents is negative (%d)", c.Copied)
	}
	if err := (bsoncore.Value{Type: bsoncore.Type(c.LastID.Type), Data: c.LastID.Value}).Validate(); err != nil || c.LastID.Type == 0 {
		return fmt.Errorf("the snapshot record's last _id is not a valid BSON value: %v", err)
	}
	return nil
}

// snapshotDoc is the BSON form of c, as CollectionStore keeps it.
func (c *SnapshotCheckpoint) snapshotDoc() bson.D {
	return bson.D{
		{Key: "version", Value: c.version()},
		{Key: "db", Value: c.DB},
		{Key: "coll", Value: c.Collection},
		{Key: "lastId", Value: c.LastID},
		{Key: "copied", Value: c.Copied},
	}
}

// decodeSnapshotDoc reads the BSON form of a snapshot record.
func decodeSnapshotDoc(raw bson.Raw) (*SnapshotCheckpoint, error) {
	var c SnapshotCheckpoint
	v, ok := raw.Lookup("version").AsInt64OK()
	if !ok {
		return nil, errors.New("the snapshot record has no version")
	}
	c.Version = int(v)
	if c.DB, ok = raw.Lookup("db").StringValueOK(); !ok {
		return nil, errors.New("the snapshot record's db is missing or not a string")
	}
	if c.Collection, ok = raw.Lookup("coll").StringValueOK(); !ok {
		return nil, errors.New("the snapshot record's coll is missing or not a string")
	}
	id, err := raw.LookupErr("lastId")
	if err != nil {
		return nil, errors.New("the snapshot record's lastId is missing")
	}
	c.LastID = bson.RawValue{Type: id.Type, Value: bytes.Clone(id.Value)}
	if c.Copied, ok = raw.Lookup("copied").AsInt64OK(); !ok {
		return nil, errors.New("the snapshot record's copied is missing or not a number")
	}
	if c.Version != SnapshotCheckpointVersion {
		return nil, (&c).check()
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return &c, nil
}

// snapshotFile is the JSON form of a snapshot record in a checkpoint file.
type snapshotFile struct {
	Version    int    `json:"version"`
	DB         string `json:"db"`
	Collection string `json:"collection"`
	LastID     string `json:"lastID"` // base64 of the BSON document {_id: <last _id>}
	Copied     int64  `json:"copied"`
}

// snapshotFileOf returns the JSON form of c.
func snapshotFileOf(c *SnapshotCheckpoint) (*snapshotFile, error) {
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("changestream: checkpoint's snapshot record: %w", err)
	}
	doc := bsoncore.NewDocumentBuilder().AppendValue("_id", bsoncore.Value{Type: bsoncore.Type(c.LastID.Type), Data: c.LastID.Value}).Build()
	return &snapshotFile{
		Version: c.version(), DB: c.DB, Collection: c.Collection,
		LastID: base64.StdEncoding.EncodeToString(doc), Copied: c.Copied,
	}, nil
}

// checkpoint reads the JSON form back; it accepts exactly what
// snapshotFileOf writes.
func (f *snapshotFile) checkpoint() (*SnapshotCheckpoint, error) {
	if f.Version == 0 {
		return nil, errors.New("the snapshot record has no version")
	}
	c := &SnapshotCheckpoint{Version: f.Version, DB: f.DB, Collection: f.Collection, Copied: f.Copied}
	if f.Version == SnapshotCheckpointVersion {
		doc, err := base64.StdEncoding.Strict().DecodeString(f.LastID)
		if err != nil {
			return nil, fmt.Errorf("the snapshot record's lastID is not base64: %v", err)
		}
		if err := bsoncore.Document(doc).Validate(); err != nil {
			return nil, fmt.Errorf("the snapshot record's lastID is not a BSON document: %v", err)
		}
		elems, _ := bsoncore.Document(doc).Elements()
		if len(elems) != 1 || elems[0].Key() != "_id" {
			return nil, errors.New("the snapshot record's lastID is not a document {_id: value}")
		}
		v := elems[0].Value()
		c.LastID = bson.RawValue{Type: bson.Type(v.Type), Value: bytes.Clone(v.Data)}
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}
