package store

// This file declares the whole Pebble key space of the store. Nothing outside
// it builds or parses a key.
//
// Every key starts with a one-byte prefix that names its family. Integers in
// keys are big-endian so that byte order equals numeric order and a stream's
// keys sort by offset: appends go to the end of a stream's range and reads are
// forward scans. Values are little-endian (they are never compared).
//
// The stream part that several families share is
//
//	streamEnc = topic | 0x00 | token^(1<<63) (8B BE) | rangeIndex (4B BE) | version (4B BE)
//
// The topic never contains 0x00 (validated), so the terminator makes the
// encoding prefix-free and sorts "a" before "a.b". Flipping the sign bit of the
// token makes negative tokens sort first, as signed ints do. A stream's keys
// therefore sort by (topic, token, rangeIndex, version), the order Streams
// returns.
//
//	prefix  family          key                                value
//	0x01    meta            0x01 | name                        per name (see metaLayoutKey)
//	0x02    chunk           0x02 | streamEnc | first (8B BE)   chunk (chunk.go)
//	0x03    chunk index     0x03 | streamEnc | first (8B BE)   count u32 | size u32 | unixNanos i64 (LE, 16B)
//	0x04    stream meta     0x04 | streamEnc                   earliest retained offset i64 (LE, 8B)
//	0x05    group offset    0x05 | groupEnc | streamEnc        committed offset i64 | commit time, Unix ns i64 (LE, 16B; 8B without the time)
//	0x06    group inactive  0x06 | groupEnc                    since, Unix ns i64 (LE, 8B)
//
// chunk: the events of the appends to one stream in one commit (up to
// 128 KiB; one append may make a larger one: see addToChunk in commit.go).
// first is the offset of the chunk's first event; the chunk holds offsets
// [first, first+count). Chunks of a stream are contiguous from the earliest
// retained offset to the high watermark.
//
// chunk index: written in the same batch as the chunk, with the chunk's event
// count, encoded size and append time. Recovery (last index entry of each
// stream) and retention (age and size of old chunks) read only this small
// family and never touch the large chunk values, which with value separation
// live in blob files.
//
// stream meta: written by retention in the same batch that deletes a stream's
// oldest chunks. It keeps the earliest retained offset, and so the high
// watermark, of a stream whose chunks were all deleted.
//
// group offset: groupEnc escapes the group name so that any string is
// allowed and the encoding stays prefix-free and order-preserving:
// each 0x00 byte becomes 0x00 0xFF, and the name ends with 0x00 0x01.
//
// group inactive: when a group with committed offsets last lost its last
// member (or, for a group that had members when the broker stopped, when
// the broker started again). Offset retention counts from it, so that
// restarts do not reset the count. The first member that joins the group
// deletes it.
//
// meta: metaLayoutKey holds the layout version (i64 LE, 8B) of this file; Open
// writes it into a new store, upgrades an older one and refuses a newer one.
// metaSettingKey holds the broker settings that the data depends on.

import (
	"encoding/binary"
	"fmt"
)

// Key family prefixes. See the table above.
const (
	prefixMeta          byte = 0x01
	prefixChunk         byte = 0x02
	prefixChunkIndex    byte = 0x03
	prefixStreamMeta    byte = 0x04
	prefixGroupOffset   byte = 0x05
	prefixGroupInactive byte = 0x06
)

// layoutVersion is the version of the key layout and value encodings
// declared here and in chunk.go.
//
// Version 2 added the commit time to group-offset values (16 bytes instead
// of 8) and the setting keys. A version 1 store is upgraded when opened (its
// 8-byte offsets still read), and a build that reads only version 1 refuses
// a version 2 store, with a message, instead of failing every group-offset
// read.
//
// Version 3 added the group-inactive family. Older stores are upgraded
// when opened (they have none of its keys), and a version 2 build refuses a
// version 3 store: it would leave those keys stale, and offset retention
// would then count from a time the group was not inactive.
const layoutVersion uint32 = 3

// oldestLayoutVersion is the oldest layout this build opens (and upgrades).
const oldestLayoutVersion = 1

// metaLayoutKey returns the key of the layout version record:
// 0x01 | "layout".
func metaLayoutKey() []byte { return append([]byte{prefixMeta}, "layout"...) }

// metaSettingKey returns the key of a broker setting recorded with the data
// (Store.RecordSetting): 0x01 | "setting/" | name. Its value is the
// setting's text.
func metaSettingKey(name string) []byte {
	return append(append([]byte{prefixMeta}, "setting/"...), name...)
}

const (
	streamFixedLen = 1 + 8 + 4 + 4 // terminator, token, rangeIndex, version
	offsetLen      = 8
	indexValueLen  = 16
	int64ValueLen  = 8
)

// streamEncLen is the length of st's encoding.
func streamEncLen(st Stream) int { return len(st.Topic) + streamFixedLen }

// appendStreamEnc appends streamEnc(st) to dst.
func appendStreamEnc(dst []byte, st Stream) []byte {
	dst = append(dst, st.Topic...)
	dst = append(dst, 0)
	dst = binary.BigEndian.AppendUint64(dst, uint64(st.Token)^(1<<63))
	dst = binary.BigEndian.AppendUint32(dst, st.RangeIndex)
	dst = binary.BigEndian.AppendUint32(dst, st.Version)
	return dst
}

// decodeStreamEnc parses a streamEnc at the start of b and returns the
// stream and the rest of b.
func decodeStreamEnc(b []byte) (Stream, []byte, error) {
	end := -1
	for i, c := range b {
		if c == 0 {
			end = i
			break
		}
	}
	if end <= 0 || len(b)-end < streamFixedLen {
		return Stream{}, nil, fmt.Errorf("%w: malformed stream in key %x", ErrCorrupt, b)
	}
	st := Stream{Topic: string(b[:end])}
	rest := b[end+1:]
	st.Token = int64(binary.BigEndian.Uint64(rest) ^ (1 << 63))
	st.RangeIndex = binary.BigEndian.Uint32(rest[8:])
	st.Version = binary.BigEndian.Uint32(rest[12:])
	return st, rest[16:], nil
}

// streamPrefix returns prefix | streamEnc(st): the common prefix of all of a
// stream's keys in the chunk or chunk-index family.
func streamPrefix(prefix byte, st Stream) []byte {
	b := make([]byte, 0, 1+streamEncLen(st)+offsetLen)
	b = append(b, prefix)
	return appendStreamEnc(b, st)
}

// offsetKey returns prefix | streamEnc(st) | offset: a chunk key
// (prefixChunk) or a chunk-index key (prefixChunkIndex).
func offsetKey(prefix byte, st Stream, offset int64) []byte {
	return appendOffsetKey(make([]byte, 0, 1+streamEncLen(st)+offsetLen), prefix, st, offset)
}

// appendOffsetKey is offsetKey appending to dst.
func appendOffsetKey(dst []byte, prefix byte, st Stream, offset int64) []byte {
	dst = append(dst, prefix)
	dst = appendStreamEnc(dst, st)
	return binary.BigEndian.AppendUint64(dst, uint64(offset))
}

// decodeOffsetKey parses a chunk or chunk-index key.
func decodeOffsetKey(prefix byte, key []byte) (Stream, int64, error) {
	if len(key) == 0 || key[0] != prefix {
		return Stream{}, 0, fmt.Errorf("%w: key %x is not in family 0x%02x", ErrCorrupt, key, prefix)
	}
	st, rest, err := decodeStreamEnc(key[1:])
	if err != nil {
		return Stream{}, 0, err
	}
	if len(rest) != offsetLen {
		return Stream{}, 0, fmt.Errorf("%w: key %x has %d offset bytes", ErrCorrupt, key, len(rest))
	}
	off := binary.BigEndian.Uint64(rest)
	if off > 1<<62 {
		return Stream{}, 0, fmt.Errorf("%w: key %x has offset %d", ErrCorrupt, key, off)
	}
	return st, int64(off), nil
}

// prefixEnd returns the smallest key greater than every key that starts
// with p (p must not be all 0xFF, which no prefix here is).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// familyBounds returns [lower, upper) covering every key of a family.
func familyBounds(prefix byte) (lower, upper []byte) {
	return []byte{prefix}, []byte{prefix + 1}
}

// streamMetaKey returns 0x04 | streamEnc(st).
func streamMetaKey(st Stream) []byte { return streamPrefix(prefixStreamMeta, st) }

// decodeStreamMetaKey parses a stream-meta key.
func decodeStreamMetaKey(key []byte) (Stream, error) {
	if len(key) == 0 || key[0] != prefixStreamMeta {
		return Stream{}, fmt.Errorf("%w: key %x is not a stream meta key", ErrCorrupt, key)
	}
	st, rest, err := decodeStreamEnc(key[1:])
	if err != nil {
		return Stream{}, err
	}
	if len(rest) != 0 {
		return Stream{}, fmt.Errorf("%w: stream meta key %x has %d trailing bytes", ErrCorrupt, key, len(rest))
	}
	return st, nil
}

// groupPrefix returns 0x05 | groupEnc(group): the common prefix of a
// group's offset keys.
func groupPrefix(group string) []byte {
	return appendGroupEnc(append(make([]byte, 0, 1+len(group)+2), prefixGroupOffset), group)
}

// groupOffsetKey returns 0x05 | groupEnc(group) | streamEnc(st).
func groupOffsetKey(group string, st Stream) []byte {
	b := make([]byte, 0, 1+len(group)+2+streamEncLen(st))
	b = append(b, prefixGroupOffset)
	b = appendGroupEnc(b, group)
	return appendStreamEnc(b, st)
}

func appendGroupEnc(dst []byte, group string) []byte {
	for i := 0; i < len(group); i++ {
		dst = append(dst, group[i])
		if group[i] == 0 {
			dst = append(dst, 0xFF)
		}
	}
	return append(dst, 0x00, 0x01)
}

// groupInactiveKey returns 0x06 | groupEnc(group).
func groupInactiveKey(group string) []byte {
	return appendGroupEnc(append(make([]byte, 0, 1+len(group)+2), prefixGroupInactive), group)
}

// decodeGroupInactiveKey parses a group-inactive key.
func decodeGroupInactiveKey(key []byte) (string, error) {
	if len(key) == 0 || key[0] != prefixGroupInactive {
		return "", fmt.Errorf("%w: key %x is not a group inactive key", ErrCorrupt, key)
	}
	group, rest, err := decodeGroupEnc(key)
	if err != nil {
		return "", err
	}
	if len(rest) != 0 {
		return "", fmt.Errorf("%w: group inactive key %x has %d trailing bytes", ErrCorrupt, key, len(rest))
	}
	return group, nil
}

// decodeGroupOffsetKey parses a group-offset key.
func decodeGroupOffsetKey(key []byte) (string, Stream, error) {
	if len(key) == 0 || key[0] != prefixGroupOffset {
		return "", Stream{}, fmt.Errorf("%w: key %x is not a group offset key", ErrCorrupt, key)
	}
	group, rest, err := decodeGroupEnc(key)
	if err != nil {
		return "", Stream{}, err
	}
	st, rest, err := decodeStreamEnc(rest)
	if err != nil {
		return "", Stream{}, err
	}
	if len(rest) != 0 {
		return "", Stream{}, fmt.Errorf("%w: group key %x has %d trailing bytes", ErrCorrupt, key, len(rest))
	}
	return group, st, nil
}

// decodeGroupEnc parses the groupEnc that follows the prefix byte of key
// and returns the group and the rest of key.
func decodeGroupEnc(key []byte) (string, []byte, error) {
	var group []byte
	b := key[1:]
	for i := 0; ; i++ {
		if i+1 >= len(b) {
			return "", nil, fmt.Errorf("%w: unterminated group in key %x", ErrCorrupt, key)
		}
		if b[i] != 0 {
			group = append(group, b[i])
			continue
		}
		switch b[i+1] {
		case 0xFF:
			group = append(group, 0)
			i++
			continue
		case 0x01:
		default:
			return "", nil, fmt.Errorf("%w: bad group escape in key %x", ErrCorrupt, key)
		}
		return string(group), b[i+2:], nil
	}
}

// indexEntry is the value of a chunk-index key.
type indexEntry struct {
	count     uint32 // events in the chunk
	size      uint32 // encoded chunk size in bytes
	unixNanos int64  // append time
}

// putIndexEntry encodes e into b[:indexValueLen].
func putIndexEntry(b []byte, e indexEntry) {
	binary.LittleEndian.PutUint32(b, e.count)
	binary.LittleEndian.PutUint32(b[4:], e.size)
	binary.LittleEndian.PutUint64(b[8:], uint64(e.unixNanos))
}

func decodeIndexEntry(b []byte) (indexEntry, error) {
	if len(b) != indexValueLen {
		return indexEntry{}, fmt.Errorf("%w: index value has %d bytes, want %d", ErrCorrupt, len(b), indexValueLen)
	}
	e := indexEntry{
		count:     binary.LittleEndian.Uint32(b),
		size:      binary.LittleEndian.Uint32(b[4:]),
		unixNanos: int64(binary.LittleEndian.Uint64(b[8:])),
	}
	if e.count == 0 || e.size < chunkHeaderLen {
		return indexEntry{}, fmt.Errorf("%w: index value count=%d size=%d", ErrCorrupt, e.count, e.size)
	}
	return e, nil
}

// groupOffsetValueLen is the length of a group-offset value: the offset and
// the time of the commit. Values written before the time was recorded have
// only the offset (int64ValueLen).
const groupOffsetValueLen = 16

// encodeGroupOffsetValue encodes a group-offset value.
func encodeGroupOffsetValue(offset, unixNanos int64) []byte {
	b := make([]byte, groupOffsetValueLen)
	binary.LittleEndian.PutUint64(b, uint64(offset))
	binary.LittleEndian.PutUint64(b[8:], uint64(unixNanos))
	return b
}

// decodeGroupOffsetValue decodes a group-offset value; unixNanos is 0 for a
// value written without the time.
func decodeGroupOffsetValue(b []byte) (offset, unixNanos int64, err error) {
	switch len(b) {
	case int64ValueLen:
		offset, err = decodeInt64Value(b)
		return offset, 0, err
	case groupOffsetValueLen:
		offset, err = decodeInt64Value(b[:int64ValueLen])
		return offset, int64(binary.LittleEndian.Uint64(b[8:])), err
	}
	return 0, 0, fmt.Errorf("%w: group offset value has %d bytes", ErrCorrupt, len(b))
}

// encodeInt64Value encodes the value of stream-meta keys (and of
// group-offset keys written before the commit time was recorded).
func encodeInt64Value(v int64) []byte {
	return binary.LittleEndian.AppendUint64(make([]byte, 0, int64ValueLen), uint64(v))
}

func decodeInt64Value(b []byte) (int64, error) {
	if len(b) != int64ValueLen {
		return 0, fmt.Errorf("%w: int64 value has %d bytes", ErrCorrupt, len(b))
	}
	v := int64(binary.LittleEndian.Uint64(b))
	if v < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrCorrupt, v)
	}
	return v, nil
}
