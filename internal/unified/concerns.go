package unified

import (
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

// concerns are the readConcern, writeConcern and readPreference of a
// database, collection or transaction option document; nil where absent.
type concerns struct {
	read  *readconcern.ReadConcern
	write *writeconcern.WriteConcern
	pref  *readpref.ReadPref
}

// parseConcerns reads readConcern, writeConcern and readPreference from
// an options document; other keys are refused.
func parseConcerns(d bson.Raw) (concerns, error) {
	var c concerns
	elems, _ := d.Elements()
	for _, el := range elems {
		var err error
		switch el.Key() {
		case "readConcern":
			c.read, err = readConcern(el.Value().Document())
		case "writeConcern":
			c.write, err = writeConcern(el.Value().Document())
		case "readPreference":
			c.pref, err = readPreference(el.Value().Document())
		default:
			err = skipf("option %q is not supported by this runner", el.Key())
		}
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

func readConcern(d bson.Raw) (*readconcern.ReadConcern, error) {
	elems, _ := d.Elements()
	rc := &readconcern.ReadConcern{}
	for _, el := range elems {
		if el.Key() != "level" {
			return nil, skipf("readConcern %q is not supported by this runner", el.Key())
		}
		rc.Level = el.Value().StringValue()
	}
	return rc, nil
}

func writeConcern(d bson.Raw) (*writeconcern.WriteConcern, error) {
	wc := &writeconcern.WriteConcern{}
	elems, _ := d.Elements()
	for _, el := range elems {
		v := el.Value()
		switch el.Key() {
		case "w":
			if s, ok := v.StringValueOK(); ok {
				wc.W = s
			} else {
				n, _ := number(v)
				wc.W = int(n)
			}
		case "journal", "j":
			j := v.Boolean()
			wc.Journal = &j
		case "wtimeoutMS", "wtimeout":
			return nil, skipf("the Go driver v2 has no write concern wtimeout")
		default:
			return nil, skipf("writeConcern %q is not supported by this runner", el.Key())
		}
	}
	return wc, nil
}

func readPreference(d bson.Raw) (*readpref.ReadPref, error) {
	mode, _ := d.Lookup("mode").StringValueOK()
	m, err := readpref.ModeFromString(mode)
	if err != nil {
		return nil, err
	}
	var opts []readpref.Option
	if v, err := d.LookupErr("maxStalenessSeconds"); err == nil {
		n, _ := number(v)
		opts = append(opts, readpref.WithMaxStaleness(time.Duration(n)*time.Second))
	}
	elems, _ := d.Elements()
	for _, el := range elems {
		switch el.Key() {
		case "mode", "maxStalenessSeconds":
		default:
			return nil, skipf("readPreference %q is not supported by this runner", el.Key())
		}
	}
	return readpref.New(m, opts...)
}

// transactionOptions reads startTransaction's (or
// defaultTransactionOptions') options.
func transactionOptions(d bson.Raw) (*options.TransactionOptionsBuilder, error) {
	to := options.Transaction()
	elems, _ := d.Elements()
	for _, el := range elems {
		switch el.Key() {
		case "readConcern":
			rc, err := readConcern(el.Value().Document())
			if err != nil {
				return nil, err
			}
			to.SetReadConcern(rc)
		case "writeConcern":
			wc, err := writeConcern(el.Value().Document())
			if err != nil {
				return nil, err
			}
			to.SetWriteConcern(wc)
		case "readPreference":
			rp, err := readPreference(el.Value().Document())
			if err != nil {
				return nil, err
			}
			to.SetReadPreference(rp)
		case "maxCommitTimeMS":
			return nil, skipf("the Go driver v2 has no per-transaction maxCommitTimeMS (it uses the context deadline)")
		default:
			return nil, skipf("transaction option %q is not supported by this runner", el.Key())
		}
	}
	return to, nil
}
