package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestChunkRoundTrip(t *testing.T) {
	events := [][]byte{[]byte(`{"a":1}`), []byte("x"), bytes.Repeat([]byte("y"), 1000)}
	b := appendChunk([]byte("prefix"), events, 1234567890)
	b = b[len("prefix"):]
	if len(b) != chunkSize(events) {
		t.Fatalf("encoded %d bytes, chunkSize says %d", len(b), chunkSize(events))
	}
	c, err := decodeChunk(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.count != 3 || c.unixNanos != 1234567890 || !equalEvents(c.events(), events) {
		t.Fatalf("decoded %+v", c)
	}
}

func TestDecodeChunkRejects(t *testing.T) {
	good := appendChunk(nil, [][]byte{[]byte("ab"), []byte("cde")}, 42)
	// reseal recomputes the checksum after a structural edit, so the
	// structural checks (not only the checksum) are exercised.
	reseal := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[4:], crc32c(b[8:]))
		return b
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"empty":          nil,
		"short header":   good[:10],
		"bad magic":      edit(func(b []byte) []byte { b[0] = 'X'; return b }),
		"bad version":    edit(func(b []byte) []byte { b[3] = 9; return b }),
		"flipped bit":    edit(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"flipped crc":    edit(func(b []byte) []byte { b[5] ^= 1; return b }),
		"truncated":      good[:len(good)-1],
		"trailing byte":  reseal(append(bytes.Clone(good), 0)),
		"zero count":     edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 0); return reseal(b) }),
		"huge count":     edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 1<<31); return reseal(b) }),
		"payload length": edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 6); return reseal(b) }),
		"empty event": edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[24:], 0)
			binary.LittleEndian.PutUint32(b[28:], 5)
			return reseal(b)
		}),
		"lengths mismatch": edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[24:], 1)
			return reseal(b)
		}),
	} {
		if _, err := decodeChunk(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzDecodeChunk checks that decodeChunk never panics, that what it
// accepts re-encodes to the same bytes (the format is canonical), and that
// every valid chunk round-trips.
func FuzzDecodeChunk(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add(appendChunk(nil, [][]byte{[]byte("a")}, 1), uint8(0))
	f.Add(appendChunk(nil, [][]byte{[]byte(`{"x":1}`), []byte(`[1,2]`), []byte(`"s"`)}, -5), uint8(2))
	f.Add([]byte("FLC\x01\x00\x00\x00\x00\x01\x00\x00\x00"), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		if c, err := decodeChunk(data); err == nil {
			again := appendChunk(nil, c.events(), c.unixNanos)
			if !bytes.Equal(again, data) {
				t.Fatalf("accepted chunk re-encodes differently:\n%x\n%x", data, again)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}

		// Build a valid chunk from the input: split it into events.
		var events [][]byte
		n := int(split%8) + 1
		for i := 0; i < n && len(data) > 0; i++ {
			k := max(1, len(data)/(n-i))
			events = append(events, data[:k])
			data = data[k:]
		}
		if len(events) == 0 {
			return
		}
		b := appendChunk(nil, events, int64(split)<<40)
		c, err := decodeChunk(b)
		if err != nil {
			t.Fatalf("valid chunk rejected: %v", err)
		}
		if c.unixNanos != int64(split)<<40 || !equalEvents(c.events(), events) {
			t.Fatalf("round trip changed the chunk")
		}
	})
}
