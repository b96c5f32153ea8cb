package bench

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"testing"
)

func TestEventsHaveTheirSizeAndParse(t *testing.T) {
	for _, size := range []int{minEventSize, 200, 1024, 4000} {
		g := newEventGen("0badcafe", size)
		for _, seq := range []uint64{0, 9, 12345, 1 << 40} {
			ev := g.appendEvent(nil, seq, 1700000000123456789)
			if len(ev) != size {
				t.Errorf("size %d seq %d: event of %d bytes", size, seq, len(ev))
			}
			if !json.Valid(ev) {
				t.Fatalf("not JSON: %s", ev)
			}
			p, ok := parseEvent(ev)
			if !ok || string(p.run) != "0badcafe" || p.seq != seq || p.ts != 1700000000123456789 {
				t.Fatalf("parse %s: %+v %v", ev, p, ok)
			}
		}
	}
}

func TestParseEventRejectsDamage(t *testing.T) {
	g := newEventGen("0badcafe", 200)
	ev := g.appendEvent(nil, 42, 1)
	for i := range ev {
		bad := bytes.Clone(ev)
		bad[i] ^= 0x01
		if p, ok := parseEvent(bad); ok && p.seq == 42 && string(p.run) == "0badcafe" {
			t.Errorf("flipping byte %d (%q) went unnoticed", i, ev[i])
		}
	}
	for _, bad := range [][]byte{ev[:len(ev)-1], ev[1:], []byte(`{"productId":1}`), nil} {
		if _, ok := parseEvent(bad); ok {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestPadsDifferBySeq checks that each event's pad is its own slice of the
// pool: consecutive seqs take adjacent slices, and an event carrying its
// neighbour's pad is rejected.
// Padding is as incompressible as JSON text can be: every printable ASCII
// character but '"' and '\\', equally often, and gzip at its best level
// saves no more than the entropy bound allows (log2(93)/8 = 81.7% of the
// size at the least).
func TestPaddingIsIncompressible(t *testing.T) {
	pool := padPool([]byte("0badc0de"))
	counts := map[byte]int{}
	for _, c := range pool {
		counts[c]++
	}
	if len(counts) != 93 || counts['"'] != 0 || counts['\\'] != 0 {
		t.Fatalf("%d distinct characters (quote %d, backslash %d), want the 93 others of printable ASCII", len(counts), counts['"'], counts['\\'])
	}
	for c, n := range counts {
		// Each expected len/93 = 45,100 times; 5 sigma is about 1,050.
		if want := len(pool) / 93; n < want-1500 || n > want+1500 {
			t.Errorf("%q appears %d times, want about %d", c, n, want)
		}
	}
	var z bytes.Buffer
	w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	_, _ = w.Write(pool)
	_ = w.Close()
	if ratio := float64(z.Len()) / float64(len(pool)); ratio < 0.81 {
		t.Errorf("gzip shrinks padding to %.1f%% of its size", ratio*100)
	} else {
		t.Logf("gzip -9 keeps %.1f%% of the padding", ratio*100)
	}
}

func TestPadsDifferBySeq(t *testing.T) {
	g := newEventGen("0badcafe", 200)
	ev1, ev2 := g.appendEvent(nil, 100, 1), g.appendEvent(nil, 101, 1)
	pad := func(ev []byte) []byte {
		i := bytes.Index(ev, []byte(`"pad":"`)) + len(`"pad":"`)
		return ev[i : len(ev)-2]
	}
	p1, p2 := pad(ev1), pad(ev2)
	if len(p1) != len(p2) || bytes.Equal(p1, p2) {
		t.Fatalf("seqs 100 and 101 got the same pad %q", p1)
	}
	if off1, off2 := padOffset(100, len(p1)), padOffset(101, len(p2)); off2 != off1+len(p1) {
		t.Errorf("pad of seq 101 at %d, want %d (right after seq 100's)", off2, off1+len(p1))
	}
	swapped := append(bytes.Clone(ev1[:len(ev1)-2-len(p1)]), p2...)
	swapped = append(swapped, `"}`...)
	if len(swapped) != len(ev1) {
		t.Fatalf("swapped event has %d bytes, want %d", len(swapped), len(ev1))
	}
	if _, ok := parseEvent(swapped); ok {
		t.Errorf("an event with its neighbour's pad was accepted: %q", swapped)
	}
	for _, padLen := range []int{1, 150, maxEventSize - eventOverhead} {
		for _, seq := range []uint64{0, 1, 1 << 20, 1<<40 + 7, 1<<63 - 1} {
			if off := padOffset(seq, padLen); off < 0 || off+padLen > padPoolSize {
				t.Errorf("padOffset(%d, %d) = %d: the pad leaves the pool", seq, padLen, off)
			}
		}
	}
}

func TestForEachValue(t *testing.T) {
	g := newEventGen("00000001", 150)
	e1, e2 := g.appendEvent(nil, 1, 1), g.appendEvent(nil, 2, 1)
	odd := `{"a":"x\"}]","b":[1,{"c":[]}],"d":null}`
	body := fmt.Sprintf(`[{"topic":"t","token":"-9223372036854775808","rangeIndex":0,"version":1,"startOffset":"6","values":[%s,%s]},`+
		`{"topic":"t\\\"","token":"0","rangeIndex":1,"version":1,"startOffset":"0","values":[%s, 12, "s"]}]`, e1, e2, odd)
	var got [][]byte
	n, err := forEachValue([]byte(body), func(ev []byte) { got = append(got, bytes.Clone(ev)) })
	if err != nil || n != 5 {
		t.Fatalf("n %d err %v", n, err)
	}
	want := []string{string(e1), string(e2), odd, "12", `"s"`}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("value %d: %s, want %s", i, got[i], want[i])
		}
	}
	if n, err := forEachValue([]byte(`[]`), nil); n != 0 || err != nil {
		t.Errorf("empty: %d %v", n, err)
	}
	for _, bad := range []string{``, `{}`, `[{"values":[{"a":1}`, `[{"values":["x]}]`} {
		if _, err := forEachValue([]byte(bad), func([]byte) {}); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

func TestBitsetAndAckFile(t *testing.T) {
	var a acks
	a.ack(0, 100)
	a.ack(150, 3*pageBits+7)
	a.fail(100, 150)
	a.limit.Store(3*pageBits + 7) // every event handed out acked or failed
	f := a.file("0badcafe", "t", 200)
	if want := [][2]uint64{{0, 100}, {150, 3*pageBits + 7}}; fmt.Sprint(f.AckRanges) != fmt.Sprint(want) {
		t.Errorf("acked ranges %v, want %v", f.AckRanges, want)
	}
	if fmt.Sprint(f.FailedRanges) != "[[100 150]]" || f.Acked != 3*pageBits+7-50 {
		t.Errorf("failed %v acked %d", f.FailedRanges, f.Acked)
	}
	path := t.TempDir() + "/acks.json"
	if err := writeAckFile(path, f); err != nil {
		t.Fatal(err)
	}
	f2, err := readAckFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b := f2.toAcks()
	if b.nAcked.Load() != f.Acked || !b.acked.has(99) || b.acked.has(100) || !b.failed.has(120) || !b.acked.has(3*pageBits+6) {
		t.Errorf("reread acks differ")
	}
}

func TestVerifier(t *testing.T) {
	var a acks
	a.ack(0, 10)
	a.fail(10, 12)
	a.limit.Store(12)
	v := newVerifier("0badcafe", &a)
	g := newEventGen("0badcafe", 120)
	other := newEventGen("ffffffff", 120)
	for _, seq := range []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 3, 11} { // 9 missing, 3 twice, 11 unacked
		v.check(g.appendEvent(nil, seq, 0), 0)
	}
	v.check(other.appendEvent(nil, 9, 0), 0)
	v.check([]byte(`{"x":1}`), 0)
	if v.complete() {
		t.Error("complete with 9 missing")
	}
	r := v.result()
	want := Verify{Mode: "acks", Expected: 10, Delivered: 9, Missing: 1, Duplicated: 1, Malformed: 1, Unacked: 1, Foreign: 1}
	if r != want {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
	v.check(g.appendEvent(nil, 9, 0), 0)
	if !v.complete() {
		t.Error("not complete")
	}

	// Without acks: holes per run.
	v = newVerifier("", nil)
	for _, seq := range []uint64{0, 1, 3, 3} {
		v.check(g.appendEvent(nil, seq, 0), 0)
	}
	v.check(other.appendEvent(nil, 0, 0), 0)
	r = v.result()
	if r.Missing != 1 || r.Duplicated != 1 || r.Runs != 2 || r.Delivered != 4 {
		t.Errorf("contiguity: %+v", r)
	}
}

func BenchmarkAppendEvent(b *testing.B) {
	g := newEventGen("0badcafe", 200)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(200)
	for i := range b.N {
		buf = g.appendEvent(buf[:0], uint64(i), 1700000000000000000)
	}
}

func BenchmarkParseEvent(b *testing.B) {
	ev := newEventGen("0badcafe", 200).appendEvent(nil, 123456, 1700000000000000000)
	b.ReportAllocs()
	b.SetBytes(200)
	for range b.N {
		if _, ok := parseEvent(ev); !ok {
			b.Fatal("bad")
		}
	}
}

// A request's 100 events, as the NDJSON body of a REST or gRPC request.
func BenchmarkAppendEvents(b *testing.B) {
	g := newEventGen("0badcafe", 200)
	buf := make([]byte, 0, 100*201)
	b.ReportAllocs()
	b.SetBytes(100 * 200)
	for i := range b.N {
		buf = g.appendEvents(buf[:0], uint64(i)*100, 100, 1700000000000000000, '\n')
	}
}
