package unified

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/xoptions"
)

// applyOptions moves the arguments an options builder has a setter for
// from a into b. Arguments b has no setter for stay in a, for done to
// refuse.
func applyOptions[B any](b B, a *argMap) error {
	for k, v := range a.m {
		var ok bool
		switch k {
		case "comment":
			var s interface{ SetComment(any) B }
			if s, ok = any(b).(interface{ SetComment(any) B }); ok {
				s.SetComment(goValue(v))
			}
		case "hint":
			var s interface{ SetHint(any) B }
			if s, ok = any(b).(interface{ SetHint(any) B }); ok {
				s.SetHint(goValue(v))
			}
		case "let":
			var s interface{ SetLet(any) B }
			if s, ok = any(b).(interface{ SetLet(any) B }); ok {
				s.SetLet(goValue(v))
			}
		case "sort":
			var s interface{ SetSort(any) B }
			if s, ok = any(b).(interface{ SetSort(any) B }); ok {
				s.SetSort(goValue(v))
			}
		case "projection":
			var s interface{ SetProjection(any) B }
			if s, ok = any(b).(interface{ SetProjection(any) B }); ok {
				s.SetProjection(goValue(v))
			}
		case "min":
			var s interface{ SetMin(any) B }
			if s, ok = any(b).(interface{ SetMin(any) B }); ok {
				s.SetMin(goValue(v))
			}
		case "max":
			var s interface{ SetMax(any) B }
			if s, ok = any(b).(interface{ SetMax(any) B }); ok {
				s.SetMax(goValue(v))
			}
		case "collation":
			var s interface {
				SetCollation(*options.Collation) B
			}
			if s, ok = any(b).(interface {
				SetCollation(*options.Collation) B
			}); ok {
				c, err := collation(v.Document())
				if err != nil {
					return err
				}
				s.SetCollation(c)
			}
		case "upsert":
			var s interface{ SetUpsert(bool) B }
			if s, ok = any(b).(interface{ SetUpsert(bool) B }); ok {
				s.SetUpsert(v.Boolean())
			}
		case "ordered":
			var s interface{ SetOrdered(bool) B }
			if s, ok = any(b).(interface{ SetOrdered(bool) B }); ok {
				s.SetOrdered(v.Boolean())
			}
		case "bypassDocumentValidation":
			var s interface{ SetBypassDocumentValidation(bool) B }
			if s, ok = any(b).(interface{ SetBypassDocumentValidation(bool) B }); ok {
				s.SetBypassDocumentValidation(v.Boolean())
			}
		case "allowDiskUse":
			var s interface{ SetAllowDiskUse(bool) B }
			if s, ok = any(b).(interface{ SetAllowDiskUse(bool) B }); ok {
				s.SetAllowDiskUse(v.Boolean())
			}
		case "arrayFilters":
			var s interface{ SetArrayFilters([]any) B }
			if s, ok = any(b).(interface{ SetArrayFilters([]any) B }); ok {
				s.SetArrayFilters([]any(goValue(v).(bson.A)))
			}
		case "batchSize":
			var s interface{ SetBatchSize(int32) B }
			if s, ok = any(b).(interface{ SetBatchSize(int32) B }); ok {
				n, _ := number(v)
				s.SetBatchSize(int32(n))
			}
		case "limit":
			var s interface{ SetLimit(int64) B }
			if s, ok = any(b).(interface{ SetLimit(int64) B }); ok {
				n, _ := number(v)
				s.SetLimit(int64(n))
			}
		case "skip":
			var s interface{ SetSkip(int64) B }
			if s, ok = any(b).(interface{ SetSkip(int64) B }); ok {
				n, _ := number(v)
				s.SetSkip(int64(n))
			}
		case "returnDocument":
			var s interface {
				SetReturnDocument(options.ReturnDocument) B
			}
			if s, ok = any(b).(interface {
				SetReturnDocument(options.ReturnDocument) B
			}); ok {
				rd := options.Before
				if v.StringValue() == "After" {
					rd = options.After
				}
				s.SetReturnDocument(rd)
			}
		case "rawData":
			if err := setRawData(b, v); err != nil {
				return err
			}
			ok = true
		case "maxTimeMS":
			return skipf("the Go driver v2 has no maxTimeMS option (it uses the context deadline)")
		}
		if ok {
			delete(a.m, k)
		}
	}
	return nil
}

// setRawData sets the rawData option through the driver's xoptions.
func setRawData(b any, v bson.RawValue) error {
	on := v.Boolean()
	var err error
	switch b := b.(type) {
	case *options.AggregateOptionsBuilder:
		err = xoptions.SetInternalAggregateOptions(b, "rawData", on)
	case *options.BulkWriteOptionsBuilder:
		err = xoptions.SetInternalBulkWriteOptions(b, "rawData", on)
	case *options.ClientBulkWriteOptionsBuilder:
		err = xoptions.SetInternalClientBulkWriteOptions(b, "rawData", on)
	case *options.CountOptionsBuilder:
		err = xoptions.SetInternalCountOptions(b, "rawData", on)
	case *options.CreateIndexesOptionsBuilder:
		err = xoptions.SetInternalCreateIndexesOptions(b, "rawData", on)
	case *options.DeleteOneOptionsBuilder:
		err = xoptions.SetInternalDeleteOneOptions(b, "rawData", on)
	case *options.DeleteManyOptionsBuilder:
		err = xoptions.SetInternalDeleteManyOptions(b, "rawData", on)
	case *options.DistinctOptionsBuilder:
		err = xoptions.SetInternalDistinctOptions(b, "rawData", on)
	case *options.DropIndexesOptionsBuilder:
		err = xoptions.SetInternalDropIndexesOptions(b, "rawData", on)
	case *options.EstimatedDocumentCountOptionsBuilder:
		err = xoptions.SetInternalEstimatedDocumentCountOptions(b, "rawData", on)
	case *options.FindOptionsBuilder:
		err = xoptions.SetInternalFindOptions(b, "rawData", on)
	case *options.FindOneOptionsBuilder:
		err = xoptions.SetInternalFindOneOptions(b, "rawData", on)
	case *options.FindOneAndDeleteOptionsBuilder:
		err = xoptions.SetInternalFindOneAndDeleteOptions(b, "rawData", on)
	case *options.FindOneAndReplaceOptionsBuilder:
		err = xoptions.SetInternalFindOneAndReplaceOptions(b, "rawData", on)
	case *options.FindOneAndUpdateOptionsBuilder:
		err = xoptions.SetInternalFindOneAndUpdateOptions(b, "rawData", on)
	case *options.InsertManyOptionsBuilder:
		err = xoptions.SetInternalInsertManyOptions(b, "rawData", on)
	case *options.InsertOneOptionsBuilder:
		err = xoptions.SetInternalInsertOneOptions(b, "rawData", on)
	case *options.ListCollectionsOptionsBuilder:
		err = xoptions.SetInternalListCollectionsOptions(b, "rawData", on)
	case *options.ListIndexesOptionsBuilder:
		err = xoptions.SetInternalListIndexesOptions(b, "rawData", on)
	case *options.ReplaceOptionsBuilder:
		err = xoptions.SetInternalReplaceOptions(b, "rawData", on)
	case *options.UpdateManyOptionsBuilder:
		err = xoptions.SetInternalUpdateManyOptions(b, "rawData", on)
	case *options.UpdateOneOptionsBuilder:
		err = xoptions.SetInternalUpdateOneOptions(b, "rawData", on)
	default:
		return skipf("the Go driver has no rawData option for %T", b)
	}
	return err
}

// collation reads a collation document.
func collation(d bson.Raw) (*options.Collation, error) {
	c := &options.Collation{}
	elems, _ := d.Elements()
	for _, el := range elems {
		v := el.Value()
		switch el.Key() {
		case "locale":
			c.Locale = v.StringValue()
		case "strength":
			n, _ := number(v)
			c.Strength = int(n)
		case "caseLevel":
			c.CaseLevel = v.Boolean()
		case "caseFirst":
			c.CaseFirst = v.StringValue()
		case "numericOrdering":
			c.NumericOrdering = v.Boolean()
		case "alternate":
			c.Alternate = v.StringValue()
		case "maxVariable":
			c.MaxVariable = v.StringValue()
		case "normalization":
			c.Normalization = v.Boolean()
		case "backwards":
			c.Backwards = v.Boolean()
		default:
			return nil, fmt.Errorf("unsupported collation field %q", el.Key())
		}
	}
	return c, nil
}

func aggregateOptions(a *argMap) (*options.AggregateOptionsBuilder, error) {
	opts := options.Aggregate()
	return opts, applyOptions(opts, a)
}

func filterArg(a *argMap) any {
	if f := a.any("filter"); f != nil {
		return f
	}
	return bson.D{}
}

// updateResult is the format's result of an update or replace.
func updateResult(ur *mongo.UpdateResult) bson.D {
	d := bson.D{{Key: "matchedCount", Value: ur.MatchedCount}, {Key: "modifiedCount", Value: ur.ModifiedCount}, {Key: "upsertedCount", Value: ur.UpsertedCount}}
	if ur.UpsertedID != nil {
		d = append(d, bson.E{Key: "upsertedId", Value: ur.UpsertedID})
	}
	if !ur.Acknowledged {
		d = append(d, bson.E{Key: "acknowledged", Value: false})
	}
	return d
}

func singleResult(sr *mongo.SingleResult) (result, error) {
	raw, err := sr.Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return result{value: bson.RawValue{Type: bson.TypeNull}}, nil
	}
	if err != nil {
		return result{}, err
	}
	return result{value: docValue(raw)}, nil
}

func (r *testRun) collectionOp(ctx context.Context, c *mongo.Collection, name string, a *argMap) (result, error) {
	switch name {
	case "createChangeStream":
		return r.watch(ctx, a, c.Watch)
	case "insertOne":
		d, err := a.doc("document")
		if err != nil {
			return result{}, err
		}
		opts := options.InsertOne()
		if err := applyOptions(opts, a); err != nil {
			return result{}, err
		}
		ir, err := c.InsertOne(ctx, d, opts)
		if err != nil {
			return result{}, err
		}
		res := bson.D{{Key: "insertedId", Value: ir.InsertedID}}
		if !ir.Acknowledged {
			res = append(res, bson.E{Key: "acknowledged", Value: false})
		}
		return valueResult(res)
	case "insertMany":
		docs, ok := a.any("documents").(bson.A)
		if !ok {
			return result{}, errors.New("insertMany: documents must be an array")
		}
		opts := options.InsertMany()
		if err := applyOptions(opts, a); err != nil {
			return result{}, err
		}
		ir, err := c.InsertMany(ctx, []any(docs), opts)
		if ir == nil {
			return result{}, err
		}
		ids := bson.D{}
		for i, id := range ir.InsertedIDs {
			ids = append(ids, bson.E{Key: strconv.Itoa(i), Value: id})
		}
		res := bson.D{{Key: "insertedIds", Value: ids}}
		if !ir.Acknowledged && err == nil {
			res = append(res, bson.E{Key: "acknowledged", Value: false})
		}
		v, verr := valueResult(res)
		if verr != nil {
			return result{}, verr
		}
		// On a write error the driver still reports what it inserted.
		return v, err
	case "updateOne", "updateMany", "replaceOne":
		filter := filterArg(a)
		var ur *mongo.UpdateResult
		var err error
		switch name {
		case "updateOne":
			u := a.any("update")
			opts := options.UpdateOne()
			if err := applyOptions(opts, a); err != nil {
				return result{}, err
			}
			ur, err = c.UpdateOne(ctx, filter, u, opts)
		case "updateMany":
			u := a.any("update")
			opts := options.UpdateMany()
			if err := applyOptions(opts, a); err != nil {
				return result{}, err
			}
			ur, err = c.UpdateMany(ctx, filter, u, opts)
		default:
			u := a.any("replacement")
			opts := options.Replace()
			if err := applyOptions(opts, a); err != nil {
				return result{}, err
			}
			ur, err = c.ReplaceOne(ctx, filter, u, opts)
		}
		if err != nil {
			return result{}, err
		}
		return valueResult(updateResult(ur))
	case "deleteOne", "deleteMany":
		filter := filterArg(a)
		var dr *mongo.DeleteResult
		var err error
		if name == "deleteOne" {
			opts := options.DeleteOne()
			if err := applyOptions(opts, a); err != nil {
				return result{}, err
			}
			dr, err = c.DeleteOne(ctx, filter, opts)
		} else {
			opts := options.DeleteMany()
			if err := applyOptions(opts, a); err != nil {
				return result{}, err
			}
			dr, err = c.DeleteMany(ctx, filter, opts)
		}
		if err != nil {
			return result{}, err
		}
		res := bson.D{{Key: "deletedCount", Value: dr.DeletedCount}}
		if !dr.Acknowledged {
			res = append(res, bson.E{Key: "acknowledged", Value: false})
		}
		return valueResult(res)
	case "bulkWrite":
		return bulkWrite(ctx, c, a)
	case "find", "createFindCursor":
		filter := filterArg(a)
		opts := options.Find()
		if err := applyOptions(opts, a); err != nil {
			return result{}, err
		}
		if name == "createFindCursor" {
			cur, err := c.Find(context.WithoutCancel(ctx), filter, opts)
			if err != nil {
				return result{}, err
			}
			r.ents.cursors = append(r.ents.cursors, cur)
			return result{entity: cur}, nil
		}
		cur, err := c.Find(ctx, filter, opts)
		return cursorResult(ctx, cur, err)
	case "findOne":
		filter := filterArg(a)
		opts := options.FindOne()
		if err := applyOptions(opts, a); err != nil {
			return result{}, err
		}
		return singleResult(c.FindOne(ctx, filter, opts))
	case "findOneAndDelete":
		filter := filterArg(a)
		opts := options.FindOneAndDelete()
		if err := applyOptions(opts, a); err != nil {
			return result{}, err
		}
		return singleResult(c.FindOneAndDelete(ctx, filter, opts))
	case "findOneAndReplace":
		filter := filterArg(a)
		u := a.any("replacement")
		opts := options.FindOneAndReplace()
		if err := applyOptions(opts, a); err != nil {
			return result{}, err
		}
		return singleResult(c.FindOneAndReplace(ctx, filter, u, opts))
	case "findOneAndUpdate":
		filter := filterArg(a)
		u := a.any("update")
		opts := options.FindOneAndUpdate()
		if err := applyOptions(opts, a); err != nil {
			return result{}, err
		}
		return singleResult(c.FindOneAndUpdate(ctx, filter, u, opts))
	case "aggregate":
		pipeline := a.any("pipeline")
		opts, err := aggregateOptions(a)
		if err != nil {
			return result{}, err
		}
		cur, err := c.Aggregate(ctx, pipeline, opts)
		return cursorResult(ctx, cur, err)
	case "countDocuments":
		filter := filterArg(a)
		opts := options.Count()
		if err := applyOptions(opts, a); err != nil {
			return result{}, err
		}
		n, err := c.CountDocuments(ctx, filter, opts)
		if err != nil {
			return result{}, err
		}
		return valueResult(n)
	case "estimatedDocumentCount":
		opts := options.EstimatedDocumentCount()
		if err := applyOptions(opts, a); err != nil {
			return result{}, err
		}
		n, err := c.EstimatedDocumentCount(ctx, opts)
		if err != nil {
			return result{}, err
		}
		return valueResult(n)
	case "distinct":
		field, err := a.str("fieldName")
		if err != nil {
			return result{}, err
		}
		filter := filterArg(a)
		opts := options.Distinct()
		if err := applyOptions(opts, a); err != nil {
			return result{}, err
		}
		dr := c.Distinct(ctx, field, filter, opts)
		if err := dr.Err(); err != nil {
			return result{}, err
		}
		raw, err := dr.Raw()
		if err != nil {
			return result{}, err
		}
		return result{value: bson.RawValue{Type: bson.TypeArray, Value: raw}}, nil
	case "createIndex":
		keys, err := a.doc("keys")
		if err != nil {
			return result{}, err
		}
		io := options.Index()
		if v, ok := a.take("name"); ok {
			io.SetName(v.StringValue())
		}
		if v, ok := a.take("unique"); ok {
			io.SetUnique(v.Boolean())
		}
		opts := options.CreateIndexes()
		if err := applyOptions(opts, a); err != nil {
			return result{}, err
		}
		idx, err := c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: keys, Options: io}, opts)
		if err != nil {
			return result{}, err
		}
		return valueResult(idx)
	case "dropIndex":
		n, err := a.str("name")
		if err != nil {
			return result{}, err
		}
		opts := options.DropIndexes()
		if err := applyOptions(opts, a); err != nil {
			return result{}, err
		}
		return result{}, c.Indexes().DropOne(ctx, n, opts)
	case "listIndexes", "listIndexNames":
		opts := options.ListIndexes()
		if err := applyOptions(opts, a); err != nil {
			return result{}, err
		}
		cur, err := c.Indexes().List(ctx, opts)
		if name == "listIndexes" {
			return cursorResult(ctx, cur, err)
		}
		if err != nil {
			return result{}, err
		}
		var specs []struct {
			Name string `bson:"name"`
		}
		if err := cur.All(ctx, &specs); err != nil {
			return result{}, err
		}
		names := bson.A{}
		for _, s := range specs {
			names = append(names, s.Name)
		}
		return valueResult(names)
	case "drop":
		return result{}, c.Drop(ctx)
	case "rename":
		// The Go driver has no rename helper: send renameCollection on admin.
		to, err := a.str("to")
		if err != nil {
			return result{}, err
		}
		db := c.Database()
		cmd := bson.D{
			{Key: "renameCollection", Value: db.Name() + "." + c.Name()},
			{Key: "to", Value: db.Name() + "." + to},
		}
		if dt, ok := a.take("dropTarget"); ok {
			cmd = append(cmd, bson.E{Key: "dropTarget", Value: dt.Boolean()})
		}
		return result{}, db.Client().Database("admin").RunCommand(ctx, cmd).Err()
	case "createSearchIndex", "createSearchIndexes", "listSearchIndexes", "updateSearchIndex", "dropSearchIndex":
		return searchIndexOp(ctx, c, name, a)
	}
	return result{}, fmt.Errorf("unsupported collection operation %q", name)
}

func searchIndexModel(d bson.Raw) mongo.SearchIndexModel {
	m := mongo.SearchIndexModel{Definition: d.Lookup("definition").Document(), Options: options.SearchIndexes()}
	if n, ok := d.Lookup("name").StringValueOK(); ok {
		m.Options.SetName(n)
	}
	if t, ok := d.Lookup("type").StringValueOK(); ok {
		m.Options.SetType(t)
	}
	return m
}

func searchIndexOp(ctx context.Context, c *mongo.Collection, name string, a *argMap) (result, error) {
	siv := c.SearchIndexes()
	switch name {
	case "createSearchIndex":
		d, err := a.doc("model")
		if err != nil {
			return result{}, err
		}
		n, err := siv.CreateOne(ctx, searchIndexModel(d))
		if err != nil {
			return result{}, err
		}
		return valueResult(n)
	case "createSearchIndexes":
		v, _ := a.take("models")
		vals, _ := v.Array().Values()
		models := make([]mongo.SearchIndexModel, len(vals))
		for i, m := range vals {
			models[i] = searchIndexModel(m.Document())
		}
		names, err := siv.CreateMany(ctx, models)
		if err != nil {
			return result{}, err
		}
		return valueResult(names)
	case "listSearchIndexes":
		opts := options.SearchIndexes()
		if v, ok := a.take("name"); ok {
			opts.SetName(v.StringValue())
		}
		var listOpts []options.Lister[options.ListSearchIndexesOptions]
		if v, ok := a.take("aggregationOptions"); ok {
			ao := newArgs("aggregationOptions", v.Document())
			o, err := aggregateOptions(ao)
			if err != nil {
				return result{}, err
			}
			if err := ao.done(); err != nil {
				return result{}, err
			}
			var agg options.AggregateOptions
			for _, set := range o.List() {
				if err := set(&agg); err != nil {
					return result{}, err
				}
			}
			listOpts = append(listOpts, &options.ListSearchIndexesOptionsBuilder{Opts: []func(*options.ListSearchIndexesOptions) error{
				func(l *options.ListSearchIndexesOptions) error { l.AggregateOptions = &agg; return nil },
			}})
		}
		cur, err := siv.List(ctx, opts, listOpts...)
		return cursorResult(ctx, cur, err)
	case "updateSearchIndex":
		n, err := a.str("name")
		if err != nil {
			return result{}, err
		}
		def := a.any("definition")
		return result{}, siv.UpdateOne(ctx, n, def)
	default:
		n, err := a.str("name")
		if err != nil {
			return result{}, err
		}
		return result{}, siv.DropOne(ctx, n)
	}
}
