package unified

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// oneKey splits a one-field document {name: body}.
func oneKey(v bson.RawValue) (string, bson.Raw, error) {
	d, ok := v.DocumentOK()
	if !ok {
		return "", nil, fmt.Errorf("write model %s is not a document", v)
	}
	elems, err := d.Elements()
	if err != nil || len(elems) != 1 {
		return "", nil, fmt.Errorf("write model %s must have one field", d)
	}
	body, ok := elems[0].Value().DocumentOK()
	if !ok {
		return "", nil, fmt.Errorf("write model %s: body is not a document", d)
	}
	return elems[0].Key(), body, nil
}

// modelArgs reads the fields of a write model that both bulk APIs share.
type modelArgs struct {
	*argMap
}

func (m modelArgs) collation() (*options.Collation, error) {
	v, ok := m.take("collation")
	if !ok {
		return nil, nil
	}
	return collation(v.Document())
}

func (m modelArgs) upsert() *bool {
	v, ok := m.take("upsert")
	if !ok {
		return nil
	}
	b := v.Boolean()
	return &b
}

func (m modelArgs) arrayFilters() []any {
	v, ok := m.take("arrayFilters")
	if !ok {
		return nil
	}
	return []any(goValue(v).(bson.A))
}

func bulkWrite(ctx context.Context, c *mongo.Collection, a *argMap) (result, error) {
	v, ok := a.take("requests")
	if !ok {
		return result{}, errors.New("bulkWrite: missing requests")
	}
	vals, _ := v.Array().Values()
	models := make([]mongo.WriteModel, 0, len(vals))
	for _, rv := range vals {
		kind, body, err := oneKey(rv)
		if err != nil {
			return result{}, err
		}
		m := modelArgs{newArgs(kind, body)}
		coll, err := m.collation()
		if err != nil {
			return result{}, err
		}
		var model mongo.WriteModel
		switch kind {
		case "insertOne":
			model = &mongo.InsertOneModel{Document: m.any("document")}
		case "updateOne":
			model = &mongo.UpdateOneModel{Filter: m.any("filter"), Update: m.any("update"), Upsert: m.upsert(),
				ArrayFilters: m.arrayFilters(), Collation: coll, Hint: m.any("hint"), Sort: m.any("sort")}
		case "updateMany":
			model = &mongo.UpdateManyModel{Filter: m.any("filter"), Update: m.any("update"), Upsert: m.upsert(),
				ArrayFilters: m.arrayFilters(), Collation: coll, Hint: m.any("hint")}
		case "replaceOne":
			model = &mongo.ReplaceOneModel{Filter: m.any("filter"), Replacement: m.any("replacement"), Upsert: m.upsert(),
				Collation: coll, Hint: m.any("hint"), Sort: m.any("sort")}
		case "deleteOne":
			model = &mongo.DeleteOneModel{Filter: m.any("filter"), Collation: coll, Hint: m.any("hint")}
		case "deleteMany":
			model = &mongo.DeleteManyModel{Filter: m.any("filter"), Collation: coll, Hint: m.any("hint")}
		default:
			return result{}, fmt.Errorf("bulkWrite: unsupported request %q", kind)
		}
		if err := m.done(); err != nil {
			return result{}, err
		}
		models = append(models, model)
	}
	opts := options.BulkWrite()
	if err := applyOptions(opts, a); err != nil {
		return result{}, err
	}
	br, err := c.BulkWrite(ctx, models, opts)
	// On a write error the driver still returns what was written before it.
	var res result
	if br != nil {
		upserted := bson.D{}
		for i := range len(models) {
			if id, ok := br.UpsertedIDs[int64(i)]; ok {
				upserted = append(upserted, bson.E{Key: strconv.Itoa(i), Value: id})
			}
		}
		d := bson.D{
			{Key: "deletedCount", Value: br.DeletedCount},
			{Key: "insertedCount", Value: br.InsertedCount},
			{Key: "matchedCount", Value: br.MatchedCount},
			{Key: "modifiedCount", Value: br.ModifiedCount},
			{Key: "upsertedCount", Value: br.UpsertedCount},
			{Key: "upsertedIds", Value: upserted},
		}
		if !br.Acknowledged {
			d = append(d, bson.E{Key: "acknowledged", Value: false})
		}
		var verr error
		if res, verr = valueResult(d); verr != nil {
			return result{}, verr
		}
	}
	return res, err
}

func clientBulkWrite(ctx context.Context, client *mongo.Client, a *argMap) (result, error) {
	v, ok := a.take("models")
	if !ok {
		return result{}, errors.New("clientBulkWrite: missing models")
	}
	vals, _ := v.Array().Values()
	writes := make([]mongo.ClientBulkWrite, 0, len(vals))
	for _, rv := range vals {
		kind, body, err := oneKey(rv)
		if err != nil {
			return result{}, err
		}
		m := modelArgs{newArgs(kind, body)}
		ns, err := m.str("namespace")
		if err != nil {
			return result{}, err
		}
		db, coll, found := strings.Cut(ns, ".")
		if !found {
			return result{}, fmt.Errorf("clientBulkWrite: namespace %q has no collection", ns)
		}
		col, err := m.collation()
		if err != nil {
			return result{}, err
		}
		var model mongo.ClientWriteModel
		switch kind {
		case "insertOne":
			model = &mongo.ClientInsertOneModel{Document: m.any("document")}
		case "updateOne":
			model = &mongo.ClientUpdateOneModel{Filter: m.any("filter"), Update: m.any("update"), Upsert: m.upsert(),
				ArrayFilters: m.arrayFilters(), Collation: col, Hint: m.any("hint"), Sort: m.any("sort")}
		case "updateMany":
			model = &mongo.ClientUpdateManyModel{Filter: m.any("filter"), Update: m.any("update"), Upsert: m.upsert(),
				ArrayFilters: m.arrayFilters(), Collation: col, Hint: m.any("hint")}
		case "replaceOne":
			model = &mongo.ClientReplaceOneModel{Filter: m.any("filter"), Replacement: m.any("replacement"),
				Upsert: m.upsert(), Collation: col, Hint: m.any("hint"), Sort: m.any("sort")}
		case "deleteOne":
			model = &mongo.ClientDeleteOneModel{Filter: m.any("filter"), Collation: col, Hint: m.any("hint")}
		case "deleteMany":
			model = &mongo.ClientDeleteManyModel{Filter: m.any("filter"), Collation: col, Hint: m.any("hint")}
		default:
			return result{}, fmt.Errorf("clientBulkWrite: unsupported model %q", kind)
		}
		if err := m.done(); err != nil {
			return result{}, err
		}
		writes = append(writes, mongo.ClientBulkWrite{Database: db, Collection: coll, Model: model})
	}
	opts := options.ClientBulkWrite()
	if v, ok := a.take("verboseResults"); ok {
		opts.SetVerboseResults(v.Boolean())
	}
	if v, ok := a.take("writeConcern"); ok {
		wc, err := writeConcern(v.Document())
		if err != nil {
			return result{}, err
		}
		opts.SetWriteConcern(wc)
	}
	if err := applyOptions(opts, a); err != nil {
		return result{}, err
	}
	br, err := client.BulkWrite(ctx, writes, opts)
	var cbe mongo.ClientBulkWriteException
	if errors.As(err, &cbe) {
		br = cbe.PartialResult
	}
	if br == nil {
		return result{}, err
	}
	d := bson.D{
		{Key: "insertedCount", Value: br.InsertedCount},
		{Key: "upsertedCount", Value: br.UpsertedCount},
		{Key: "matchedCount", Value: br.MatchedCount},
		{Key: "modifiedCount", Value: br.ModifiedCount},
		{Key: "deletedCount", Value: br.DeletedCount},
	}
	if br.HasVerboseResults {
		ins, upd, del := bson.D{}, bson.D{}, bson.D{}
		for i := range writes {
			k := strconv.Itoa(i)
			if r, ok := br.InsertResults[i]; ok {
				ins = append(ins, bson.E{Key: k, Value: bson.D{{Key: "insertedId", Value: r.InsertedID}}})
			}
			if r, ok := br.UpdateResults[i]; ok {
				u := bson.D{{Key: "matchedCount", Value: r.MatchedCount}, {Key: "modifiedCount", Value: r.ModifiedCount}}
				if r.UpsertedID != nil {
					u = append(u, bson.E{Key: "upsertedId", Value: r.UpsertedID})
				}
				upd = append(upd, bson.E{Key: k, Value: u})
			}
			if r, ok := br.DeleteResults[i]; ok {
				del = append(del, bson.E{Key: k, Value: bson.D{{Key: "deletedCount", Value: r.DeletedCount}}})
			}
		}
		d = append(d, bson.E{Key: "insertResults", Value: ins}, bson.E{Key: "updateResults", Value: upd}, bson.E{Key: "deleteResults", Value: del})
	}
	if !br.Acknowledged {
		d = append(d, bson.E{Key: "acknowledged", Value: false})
	}
	res, verr := valueResult(d)
	if verr != nil {
		return result{}, verr
	}
	return res, err
}
