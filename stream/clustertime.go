package stream

import (
	"reflect"
	"unsafe"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/session"
)

// serverClock reads the newest cluster time the server reported to a
// driver's stream: the $clusterTime of its latest reply, which the driver
// keeps in the stream's session. The driver does not expose the session,
// so serverClock reads it out of the stream once per driver stream; if the
// driver's layout ever changes, it reads nothing and Stats falls back to
// the cluster times of the tokens. Only the goroutine that owns the
// driver's stream uses it.
type serverClock struct {
	cs   *mongo.ChangeStream // the stream sess belongs to
	sess *session.Client     // nil when it cannot be read
}

var sessionType = reflect.TypeFor[*session.Client]()

// read returns the cluster time of cs's latest reply, or the zero
// Timestamp.
func (c *serverClock) read(cs *mongo.ChangeStream) bson.Timestamp {
	if cs == nil {
		return bson.Timestamp{}
	}
	if c.cs != cs {
		c.cs, c.sess = cs, nil
		v := reflect.ValueOf(cs).Elem().FieldByName("sess")
		if v.IsValid() && v.Type() == sessionType && !v.IsNil() {
			c.sess = reflect.NewAt(sessionType, unsafe.Pointer(v.UnsafeAddr())).Elem().Interface().(*session.Client)
		}
	}
	if c.sess == nil {
		return bson.Timestamp{}
	}
	t, i, ok := c.sess.ClusterTime.Lookup("$clusterTime", "clusterTime").TimestampOK()
	if !ok {
		return bson.Timestamp{}
	}
	return bson.Timestamp{T: t, I: i}
}
