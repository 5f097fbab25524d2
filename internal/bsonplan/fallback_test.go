package bsonplan

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// cents is a field type with a custom decoder in some registries.
type cents int64

// upperName implements bson.Unmarshaler.
type upperName string

func (u *upperName) UnmarshalBSON(b []byte) error {
	*u = upperName(fmt.Sprintf("hook:%d", len(b)))
	return nil
}

// tagValue implements bson.ValueUnmarshaler.
type tagValue struct{ S string }

func (v *tagValue) UnmarshalBSONValue(t byte, b []byte) error {
	v.S = fmt.Sprintf("hook:%x", t)
	return nil
}

// stringerName is plannable unless a registry has a decoder for
// fmt.Stringer.
type stringerName string

func (s stringerName) String() string { return string(s) }

type withStringer struct {
	S stringerName `bson:"s"`
}

type withCents struct {
	Name  string `bson:"name"`
	Price cents  `bson:"price"`
}

type plain struct {
	Name string `bson:"name"`
	N    int64  `bson:"n"`
}

// centsRegistry decodes cents from a string "12.34" as 1234.
func centsRegistry() *bson.Registry {
	reg := bson.NewRegistry()
	reg.RegisterTypeDecoder(reflect.TypeFor[cents](), bson.ValueDecoderFunc(
		func(_ bson.DecodeContext, vr bson.ValueReader, v reflect.Value) error {
			s, err := vr.ReadString()
			if err != nil {
				return err
			}
			var a, b int64
			if _, err := fmt.Sscanf(s, "%d.%d", &a, &b); err != nil {
				return err
			}
			v.SetInt(a*100 + b)
			return nil
		}))
	return reg
}

// A custom codec on a field is still used: the plan declines the type, and
// the registry's decoder runs.
func TestCustomCodecOnAFieldIsUsed(t *testing.T) {
	reg := centsRegistry()
	if Compile(reg, reflect.TypeFor[withCents]()) != nil {
		t.Fatal("a type with a custom field decoder got a plan")
	}
	d := doc(t, kv("name", "x", "price", "12.34"))
	if equivalent(t, reg, reflect.TypeFor[withCents](), d) {
		t.Fatal("plan used")
	}
	got, err, _ := registryDecode(reg, nil, reflect.TypeFor[withCents](), d)
	if err != nil {
		t.Fatal(err)
	}
	if w := got.Elem().Interface().(withCents); w.Price != 1234 {
		t.Fatalf("price %d, want 1234 from the custom decoder", w.Price)
	}
	// Only that type: another type on the same registry keeps its plan.
	if Compile(reg, reflect.TypeFor[plain]()) == nil {
		t.Error("a plain type lost its plan because another type has a custom decoder")
	}
}

// Each case sends the type to the registry: Compile returns nil, and
// decoding still gives the registry's result.
func TestFallbackCases(t *testing.T) {
	type withAny struct {
		V any `bson:"v"`
	}
	type withHook struct {
		U upperName `bson:"u"`
	}
	type withValueHook struct {
		V tagValue `bson:"v"`
	}
	type withD struct {
		D bson.D `bson:"d"`
	}
	type withDateTime struct {
		T bson.DateTime `bson:"t"`
	}
	type withM struct {
		M bson.M `bson:"m"`
	}
	type dupA struct {
		X int `bson:"x"`
	}
	type dupB struct {
		X string `bson:"x"`
	}
	type duplicated struct {
		A dupA `bson:",inline"`
		B dupB `bson:",inline"`
	}
	type twoMaps struct {
		A map[string]int `bson:",inline"`
		B map[string]int `bson:",inline"`
	}
	type inlineInt struct {
		N int `bson:",inline"`
	}
	type intKeys struct {
		M map[int]string `bson:"m"`
	}
	type withChan struct {
		C chan int `bson:"c"`
	}
	type inSlice struct {
		L []withHook `bson:"l"`
	}
	kindReg := bson.NewRegistry()
	kindReg.RegisterKindDecoder(reflect.String, bson.ValueDecoderFunc(
		func(_ bson.DecodeContext, vr bson.ValueReader, v reflect.Value) error {
			s, err := vr.ReadString()
			v.SetString("kind:" + s)
			return err
		}))
	ifaceReg := bson.NewRegistry()
	ifaceReg.RegisterInterfaceDecoder(reflect.TypeFor[fmt.Stringer](), bson.ValueDecoderFunc(
		func(bson.DecodeContext, bson.ValueReader, reflect.Value) error {
			return errors.New("stringer decoder")
		}))
	tests := []struct {
		name string
		reg  *bson.Registry
		typ  reflect.Type
		doc  any
	}{
		{"interface field", bson.NewRegistry(), reflect.TypeFor[withAny](), kv("v", int32(1))},
		{"bson.Unmarshaler field", bson.NewRegistry(), reflect.TypeFor[withHook](), kv("u", "x")},
		{"bson.ValueUnmarshaler field", bson.NewRegistry(), reflect.TypeFor[withValueHook](), kv("v", "x")},
		{"hook in a slice element", bson.NewRegistry(), reflect.TypeFor[inSlice](), kv("l", bson.A{kv("u", "x")})},
		{"bson.D field", bson.NewRegistry(), reflect.TypeFor[withD](), kv("d", kv("a", int32(1)))},
		{"bson.M field", bson.NewRegistry(), reflect.TypeFor[withM](), kv("m", kv("a", int32(1)))},
		{"driver type (bson.DateTime)", bson.NewRegistry(), reflect.TypeFor[withDateTime](), kv("t", bson.DateTime(5))},
		{"registry type decoder", centsRegistry(), reflect.TypeFor[withCents](), kv("price", "1.5")},
		{"registry kind decoder", kindReg, reflect.TypeFor[plain](), kv("name", "x")},
		{"registry interface decoder", ifaceReg, reflect.TypeFor[withStringer](), kv("s", "x")},
		{"mgo registry", bson.NewMgoRegistry(), reflect.TypeFor[plain](), kv("name", "x")},
		{"duplicated key at one depth", bson.NewRegistry(), reflect.TypeFor[duplicated](), kv("x", int32(1))},
		{"two inline maps", bson.NewRegistry(), reflect.TypeFor[twoMaps](), kv("x", int32(1))},
		{"inline int", bson.NewRegistry(), reflect.TypeFor[inlineInt](), kv("n", int32(1))},
		{"non-string map keys", bson.NewRegistry(), reflect.TypeFor[intKeys](), kv("m", kv("1", "a"))},
		{"channel field", bson.NewRegistry(), reflect.TypeFor[withChan](), kv("c", int32(1))},
	}
	if Compile(bson.NewRegistry(), reflect.TypeFor[withStringer]()) == nil {
		t.Fatal("withStringer has no plan on the default registry")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if Compile(tt.reg, tt.typ) != nil {
				t.Fatalf("%v got a plan", tt.typ)
			}
			if used := equivalent(t, tt.reg, tt.typ, doc(t, tt.doc)); used {
				t.Fatal("plan used")
			}
		})
	}
}
