package gateway

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// TestProduceResponseMatchesProtojson: the hand-written produce answer is
// byte for byte protojson's (compacted), the shape the OpenAPI document
// describes.
func TestProduceResponseMatchesProtojson(t *testing.T) {
	m := newMarshaler()
	for _, r := range []*floev1.ProduceResponse{
		{},
		{Topic: "product-stock", Token: math.MinInt64, RangeIndex: 0, Version: 1, StartOffset: 0, Count: 1},
		{Topic: "a.b_c-9", Token: math.MaxInt64, RangeIndex: math.MaxUint32, Version: math.MaxUint32, StartOffset: math.MaxInt64, Count: math.MaxUint32},
		{Topic: "quote\"back\\slash<&>\u2028", Token: -1, RangeIndex: 3, Version: 2, StartOffset: 123456789, Count: 100},
	} {
		got, err := m.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		pj, err := protojson.MarshalOptions{EmitDefaultValues: true}.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		json.Compact(&want, pj)
		// Both are valid JSON with the same values; protojson escapes
		// differently (it leaves <&> alone), so compare decoded.
		var a, b map[string]any
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		json.Unmarshal(want.Bytes(), &b)
		ga, _ := json.Marshal(a)
		gb, _ := json.Marshal(b)
		if !bytes.Equal(ga, gb) {
			t.Errorf("produce answer\n got %s\nwant %s", got, want.Bytes())
		}
	}
	got, _ := m.Marshal(&floev1.ProduceResponse{Topic: "product-stock", Token: math.MinInt64, Version: 1, StartOffset: 6, Count: 2})
	if want := `{"topic":"product-stock","token":"-9223372036854775808","rangeIndex":0,"version":1,"startOffset":"6","count":2}`; string(got) != want {
		t.Errorf("produce answer\n got %s\nwant %s", got, want)
	}
}

func TestPollBatchesShape(t *testing.T) {
	m := newMarshaler()
	got, err := m.Marshal([]*floev1.PollBatch{{
		Topic: "product-stock", Token: math.MinInt64, RangeIndex: 0, Version: 1, StartOffset: 6,
		Values: [][]byte{[]byte(`{"productId": 123, "units": -1}`), []byte(`{"productId": 123, "units": 20}`)},
	}, {
		Topic: "b", Token: math.MinInt64, RangeIndex: 3, Version: 1, StartOffset: 0, Values: [][]byte{[]byte(`"s"`)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"topic":"product-stock","token":"-9223372036854775808","rangeIndex":0,"version":1,"startOffset":"6","values":[{"productId": 123, "units": -1},{"productId": 123, "units": 20}]},` +
		`{"topic":"b","token":"-9223372036854775808","rangeIndex":3,"version":1,"startOffset":"0","values":["s"]}]`
	if string(got) != want {
		t.Errorf("poll answer\n got %s\nwant %s", got, want)
	}
	if empty, _ := m.Marshal([]*floev1.PollBatch{}); string(empty) != "[]" {
		t.Errorf("empty poll answer %s", empty)
	}
}

func BenchmarkMarshalProduceResponse(b *testing.B) {
	m := newMarshaler()
	r := &floev1.ProduceResponse{Topic: "product-stock", Token: math.MinInt64, RangeIndex: 2, Version: 1, StartOffset: 123456, Count: 100}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}
