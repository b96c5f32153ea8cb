package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/internal/reqbuf"
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

// appendJSONString writes what encoding/json writes, on its fast path for
// plain ASCII as on the other.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "product-stock", "a.b_c-9", " ~!#$%'()*+,/:;=?@[]^`{|}", "quote\"", "back\\slash",
		"<", ">", "&", "\x00", "\x1f", "\x7f", "\u00e9", "\u2028\u2029", "\xff",
	} {
		want, _ := json.Marshal(s)
		if got := appendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got[1:], want)
		}
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

// pollAnswerSize bounds the answer, so that a lent buffer is never outgrown,
// and an answer rendered for a lender uses its buffer instead of allocating.
func TestPollAnswerUsesTheLentBuffer(t *testing.T) {
	batches := []*floev1.PollBatch{{
		Topic: "t\x01\"", Token: math.MinInt64, RangeIndex: math.MaxUint32, Version: math.MaxUint32, StartOffset: math.MaxInt64,
		Values: [][]byte{[]byte(`{"a":1}`), []byte(`[2]`)},
	}, {
		Topic: strings.Repeat("x", 200), Token: math.MaxInt64, StartOffset: math.MinInt64, Values: [][]byte{[]byte(`3`)},
	}}
	plain := appendPollBatches(nil, batches)
	if n := pollAnswerSize(batches); len(plain) > n {
		t.Fatalf("answer of %d bytes, pollAnswerSize says at most %d", len(plain), n)
	}
	m := newMarshaler()
	l := reqbuf.New()
	got, err := m.Marshal(pollAnswer{batches: batches, lend: l})
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("lent answer %s (%v), want %s", got, err, plain)
	}
	l.Release()
	if raceEnabled {
		return
	}

	// Warm, the pool hands back the buffer: rendering allocates (almost)
	// nothing, where the plain answer allocates its size. A collection may
	// empty the pool during a round: the best of three rounds counts.
	big := []*floev1.PollBatch{{Topic: "t", Values: slices.Repeat([][]byte{bytes.Repeat([]byte("7"), 1000)}, 500)}}
	_ = l.Get(pollAnswerSize(big))
	l.Release()
	allocated := func(f func()) uint64 {
		best := uint64(math.MaxUint64)
		for range 3 {
			var a, b runtime.MemStats
			runtime.ReadMemStats(&a)
			for range 20 {
				f()
			}
			runtime.ReadMemStats(&b)
			best = min(best, (b.TotalAlloc-a.TotalAlloc)/20)
		}
		return best
	}
	lent := allocated(func() {
		if _, err := m.Marshal(pollAnswer{batches: big, lend: l}); err != nil {
			t.Fatal(err)
		}
		l.Release()
	})
	own := allocated(func() {
		if _, err := m.Marshal(big); err != nil {
			t.Fatal(err)
		}
	})
	if own < 500_000 || lent > own/4 {
		t.Errorf("bytes allocated per 500 KB answer: %d with a lender, %d without", lent, own)
	}
}

// pollBody is the shape of the generated poll response wrapper.
type pollBody struct{ *floev1.PollResponse }

func (b pollBody) XXX_ResponseBody() any { return b.Batches }

// Only a poll with a lender and events is rendered into a lent buffer.
func TestLendPollAnswer(t *testing.T) {
	l := reqbuf.New()
	ctx := reqbuf.With(context.Background(), l)
	withEvents := pollBody{&floev1.PollResponse{Batches: []*floev1.PollBatch{{Topic: "t", Values: [][]byte{[]byte("1")}}}}}
	empty := pollBody{&floev1.PollResponse{}}
	if got, _ := lendPollAnswer(ctx, withEvents); !reflect.DeepEqual(got, pollAnswer{batches: withEvents.Batches, lend: l}) {
		t.Errorf("poll with events and a lender: %#v", got)
	}
	for _, c := range []struct {
		name string
		ctx  context.Context
		resp pollBody
	}{{"empty answer", ctx, empty}, {"no lender", context.Background(), withEvents}} {
		if got, _ := lendPollAnswer(c.ctx, c.resp); !reflect.DeepEqual(got, c.resp) {
			t.Errorf("%s: rewritten to %#v", c.name, got)
		}
	}
}
