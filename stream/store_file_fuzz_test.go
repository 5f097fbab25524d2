package stream

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// FuzzFileStoreReader feeds arbitrary bytes to the reader FileStore.Load
// uses. It must never panic and never return a checkpoint without a token
// or save time (a silent fresh start); whatever it accepts must be what
// Save's encoder writes for that checkpoint (the same keys and values), and
// read back as the same checkpoint.
func FuzzFileStoreReader(f *testing.F) {
	tok, err := ParseToken("82642AD66D000000012B022C0100296E5A10045DC4B11BEA5F4319A8E7CAF46816ED71461E5F6964002B060004")
	if err != nil {
		f.Fatal(err)
	}
	full := Checkpoint{
		Token:       tok,
		ClusterTime: bson.Timestamp{T: 1680529005, I: 1},
		WallTime:    time.Date(2023, 4, 3, 13, 36, 45, 123000000, time.UTC),
		UpdatedAt:   time.Date(2023, 4, 3, 13, 36, 46, 1, time.UTC),
	}
	idle := Checkpoint{Token: tok, UpdatedAt: full.UpdatedAt}
	snap := full
	snap.Snapshot = &SnapshotCheckpoint{DB: "shop", Collection: "orders", LastID: bson.RawValue{Type: bson.TypeInt32, Value: []byte{7, 0, 0, 0}}, Copied: 1200}
	stamped := full
	stamped.Identity = Identity{Target: "collection shop.orders", Fingerprint: "v1:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
	foreign := idle
	foreign.Identity = Identity{Fingerprint: "v1:00"}
	stampedSnap := stamped
	stampedSnap.Snapshot = snap.Snapshot
	for _, cp := range []Checkpoint{full, idle, snap, stamped, foreign, stampedSnap} {
		data, err := encodeCheckpointFile("orders", cp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	f.Add([]byte(`{"format":"go-changestream checkpoint","version":2}`))
	f.Add([]byte(`{"format":"go-changestream checkpoint","version":1,"stream":"orders","token":"bson:EgAAAAJfZGF0YQADAAAAODIAAA==","clusterTime":{"t":0,"i":0},"updatedAt":"2024-01-01T00:00:00Z"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := decodeCheckpointFile("orders", data)
		if err != nil {
			if !cp.Token.IsZero() || !cp.UpdatedAt.IsZero() {
				t.Fatalf("failed read (%v) returned a checkpoint", err)
			}
			return
		}
		if cp.Token.IsZero() {
			t.Fatalf("read %q as a checkpoint without a token", data)
		}
		if cp.UpdatedAt.IsZero() {
			t.Fatalf("read %q as a checkpoint without a save time", data)
		}
		again, err := encodeCheckpointFile("orders", cp)
		if err != nil {
			t.Fatalf("cannot write back %q: %v", data, err)
		}
		// The reader accepts exactly what the writer produces: the same
		// keys and values, whatever the JSON layout.
		var in, out map[string]any
		if json.Unmarshal(data, &in) != nil || json.Unmarshal(again, &out) != nil || !reflect.DeepEqual(in, out) {
			t.Fatalf("accepted %q, which the writer writes as %q", data, again)
		}
		cp2, err := decodeCheckpointFile("orders", again)
		if err != nil {
			t.Fatalf("cannot read back %q (from %q): %v", again, data, err)
		}
		if !cp2.Token.Equal(cp.Token) || cp2.ClusterTime != cp.ClusterTime ||
			!cp2.WallTime.Equal(cp.WallTime) || !cp2.UpdatedAt.Equal(cp.UpdatedAt) || cp2.Identity != cp.Identity || !cp2.Snapshot.equal(cp.Snapshot) {
			t.Fatalf("write back of %q changed the checkpoint: %+v, then %+v", data, cp, cp2)
		}
	})
}
