package bench

import (
	"testing"

	"google.golang.org/protobuf/proto"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// The stream workers' own encoding of a batch is the request fill builds
// for proto.Marshal, byte for byte: typed events and NDJSON bodies, with and
// without a request id and a partition key, at the smallest event size and
// at seqs whose digits change the pad.
func TestEncodeStreamMatchesProto(t *testing.T) {
	for _, size := range []int{minEventSize, 200, 1024, 70000} {
		for _, asBody := range []bool{false, true} {
			for _, c := range []struct {
				id, base uint64
				key      string
				n        int
			}{
				{0, 0, "", 1},
				{1, 95, "k3", 10},
				{1 << 40, 999_999_990, "", 100},
			} {
				g := newEventGen("0badcafe", size)
				var b batch
				if !b.encodeStream(g, c.id, "bench", c.key, c.base, c.n, 1700000000123456789, asBody) {
					t.Fatalf("size %d body %v %+v: an event was not %d bytes", size, asBody, c, size)
				}
				got, wireSize := append([]byte(nil), b.wire.b...), b.size

				req := &floev1.ProduceStreamRequest{RequestId: c.id, Topic: "bench", PartitionKey: c.key}
				req.Events, req.Body = b.fill(g, c.base, c.n, 1700000000123456789, asBody)
				want, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != string(want) {
					t.Fatalf("size %d body %v %+v: encoded %d bytes, proto.Marshal %d, differing", size, asBody, c, len(got), len(want))
				}
				if wireSize != b.size {
					t.Fatalf("size %d body %v %+v: event bytes %d, fill counts %d", size, asBody, c, wireSize, b.size)
				}
			}
		}
	}
}

// 100 events of 200 B, as the matrix's gRPC cases send them.
func BenchmarkEncodeStream(b *testing.B) {
	g := newEventGen("0badcafe", 200)
	var bt batch
	b.ReportAllocs()
	b.SetBytes(100 * 200)
	for i := range b.N {
		bt.encodeStream(g, uint64(i), "bench", "", uint64(i)*100, 100, 1700000000000000000, false)
	}
}

// The same batch built as Event messages and marshalled, as before.
func BenchmarkFillAndMarshal(b *testing.B) {
	g := newEventGen("0badcafe", 200)
	var bt batch
	req := &floev1.ProduceStreamRequest{Topic: "bench"}
	var out []byte
	b.ReportAllocs()
	b.SetBytes(100 * 200)
	for i := range b.N {
		req.RequestId = uint64(i)
		req.Events, req.Body = bt.fill(g, uint64(i)*100, 100, 1700000000000000000, false)
		var err error
		out, err = proto.MarshalOptions{}.MarshalAppend(out[:0], req)
		if err != nil {
			b.Fatal(err)
		}
	}
}
