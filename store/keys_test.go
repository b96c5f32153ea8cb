package store

import (
	"bytes"
	"errors"
	"testing"
)

func TestKeysRoundTrip(t *testing.T) {
	st := Stream{Topic: "a.b-c_D9", Token: -42, RangeIndex: 7, Version: 3}
	for _, prefix := range []byte{prefixChunk, prefixChunkIndex} {
		k := offsetKey(prefix, st, 123456)
		gotSt, off, err := decodeOffsetKey(prefix, k)
		if err != nil || gotSt != st || off != 123456 {
			t.Fatalf("decodeOffsetKey(%x) = %v, %d, %v", k, gotSt, off, err)
		}
		if !bytes.HasPrefix(k, streamPrefix(prefix, st)) {
			t.Fatalf("key %x lacks the stream prefix", k)
		}
	}
	if got, err := decodeStreamMetaKey(streamMetaKey(st)); err != nil || got != st {
		t.Fatalf("stream meta key: %v, %v", got, err)
	}
	for _, g := range []string{"g", "g\x00", "\x00", "a\x00\xff\x01b"} {
		gotG, gotSt, err := decodeGroupOffsetKey(groupOffsetKey(g, st))
		if err != nil || gotG != g || gotSt != st {
			t.Fatalf("group key %q: %q, %v, %v", g, gotG, gotSt, err)
		}
	}
	// Offsets sort numerically within a stream, and a stream's keys sort
	// before those of the next stream.
	if bytes.Compare(offsetKey(prefixChunk, st, 255), offsetKey(prefixChunk, st, 256)) >= 0 {
		t.Fatal("offset order")
	}
	next := st
	next.Version++
	if bytes.Compare(offsetKey(prefixChunk, st, 1<<40), offsetKey(prefixChunk, next, 0)) >= 0 {
		t.Fatal("stream order")
	}
	// Group names that are prefixes of each other do not collide.
	if bytes.HasPrefix(groupOffsetKey("ab", st), groupOffsetKey("a", st)[:3]) &&
		bytes.Equal(groupOffsetKey("a\x00", st), groupOffsetKey("a", st)) {
		t.Fatal("group encoding is not prefix-free")
	}
}

// FuzzKeys checks that the key parsers never panic, reject garbage with
// ErrCorrupt, and that what they accept re-encodes to the same key.
func FuzzKeys(f *testing.F) {
	st := Stream{Topic: "t", Token: -1, RangeIndex: 2, Version: 1}
	f.Add(offsetKey(prefixChunk, st, 5))
	f.Add(offsetKey(prefixChunkIndex, st, 0))
	f.Add(streamMetaKey(st))
	f.Add(groupOffsetKey("g\x00h", st))
	f.Add([]byte{prefixChunk, 0})
	f.Fuzz(func(t *testing.T, key []byte) {
		check := func(err error, reencoded func() []byte) {
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error %v does not wrap ErrCorrupt", err)
				}
				return
			}
			if again := reencoded(); !bytes.Equal(again, key) {
				t.Fatalf("key %x re-encodes as %x", key, again)
			}
		}
		for _, prefix := range []byte{prefixChunk, prefixChunkIndex} {
			st, off, err := decodeOffsetKey(prefix, key)
			check(err, func() []byte { return offsetKey(prefix, st, off) })
		}
		sm, err := decodeStreamMetaKey(key)
		check(err, func() []byte { return streamMetaKey(sm) })
		g, gs, err := decodeGroupOffsetKey(key)
		check(err, func() []byte { return groupOffsetKey(g, gs) })
		_, _ = decodeIndexEntry(key)
		_, _ = decodeInt64Value(key)
	})
}
