package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
)

// A chunk is the value stored under one chunk key: the events of the
// appends to one stream in one commit (commit.go, addToChunk).
//
//	offset  size       field
//	0       3          magic "FLC"
//	3       1          format version (chunkVersion)
//	4       4          CRC32C (Castagnoli) of bytes [8:], LE
//	8       4          event count n >= 1, LE
//	12      4          payload length p = sum of event lengths, LE
//	16      8          append time (of its latest append), Unix ns, LE
//	24      4n         event lengths, each >= 1, LE
//	24+4n   p          event payloads, concatenated
//
// The total length is exactly 24+4n+p. The checksum covers everything after
// itself, so a flipped bit anywhere in the counts, lengths or payloads is
// caught; the magic and version are checked literally.
const (
	chunkHeaderLen = 24
	chunkVersion   = 1
	// maxChunkEvents bounds n so that 4n cannot overflow 32 bits.
	maxChunkEvents = 1<<30 - 1
)

// chunkMagic0..2 spell "FLC".
const (
	chunkMagic0 = 'F'
	chunkMagic1 = 'L'
	chunkMagic2 = 'C'
)

// crc32c returns the CRC32C (Castagnoli) of b; MakeTable returns Go's
// cached, hardware-accelerated table.
func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// chunkSize returns the encoded size of a chunk holding events.
func chunkSize(events [][]byte) int {
	n := chunkHeaderLen + 4*len(events)
	for _, e := range events {
		n += len(e)
	}
	return n
}

// appendChunk encodes events into a chunk appended to dst.
func appendChunk(dst []byte, events [][]byte, unixNanos int64) []byte {
	n := chunkSize(events)
	dst = slices.Grow(dst, n)
	putChunk(dst[len(dst):len(dst)+n], events, unixNanos)
	return dst[:len(dst)+n]
}

// putChunk encodes events into dst, whose length must be chunkSize(events).
// The caller has checked that there is at least one event, none empty, and
// that the sizes fit 32 bits (see Append).
func putChunk(dst []byte, events [][]byte, unixNanos int64) {
	payload := 0
	for _, e := range events {
		payload += len(e)
	}
	putChunkParts(dst, [][][]byte{events}, len(events), payload, unixNanos)
}

// putChunkParts encodes the events of parts, in order, as one chunk into
// dst: count events of payload bytes in all, so dst must be
// chunkHeaderLen+4*count+payload long.
func putChunkParts(dst []byte, parts [][][]byte, count, payload int, unixNanos int64) {
	dst[0], dst[1], dst[2], dst[3] = chunkMagic0, chunkMagic1, chunkMagic2, chunkVersion
	binary.LittleEndian.PutUint32(dst[8:], uint32(count))
	binary.LittleEndian.PutUint32(dst[12:], uint32(payload))
	binary.LittleEndian.PutUint64(dst[16:], uint64(unixNanos))
	pos := chunkHeaderLen
	for _, events := range parts {
		for _, e := range events {
			binary.LittleEndian.PutUint32(dst[pos:], uint32(len(e)))
			pos += 4
		}
	}
	for _, events := range parts {
		for _, e := range events {
			pos += copy(dst[pos:], e)
		}
	}
	binary.LittleEndian.PutUint32(dst[4:], crc32c(dst[8:]))
}

// chunk is a decoded, verified view of an encoded chunk. It aliases the
// encoded bytes.
type chunk struct {
	count     int
	unixNanos int64
	lengths   []byte // 4*count bytes
	payload   []byte
}

// eventLen returns the length of event i.
func (c *chunk) eventLen(i int) int {
	return int(binary.LittleEndian.Uint32(c.lengths[4*i:]))
}

// events returns the events of c, aliasing its bytes.
func (c *chunk) events() [][]byte {
	out := make([][]byte, c.count)
	pos := 0
	for i := range out {
		n := c.eventLen(i)
		out[i] = c.payload[pos : pos+n : pos+n]
		pos += n
	}
	return out
}

// decodeChunk verifies b and returns a view of it. Any malformed input
// yields an error wrapping ErrCorrupt; it never panics.
func decodeChunk(b []byte) (chunk, error) {
	if len(b) < chunkHeaderLen {
		return chunk{}, fmt.Errorf("%w: chunk of %d bytes is shorter than its header", ErrCorrupt, len(b))
	}
	if b[0] != chunkMagic0 || b[1] != chunkMagic1 || b[2] != chunkMagic2 {
		return chunk{}, fmt.Errorf("%w: bad chunk magic %x", ErrCorrupt, b[:3])
	}
	if b[3] != chunkVersion {
		return chunk{}, fmt.Errorf("%w: unknown chunk version %d", ErrCorrupt, b[3])
	}
	want := binary.LittleEndian.Uint32(b[4:])
	if got := crc32c(b[8:]); got != want {
		return chunk{}, fmt.Errorf("%w: chunk checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	count := uint64(binary.LittleEndian.Uint32(b[8:]))
	payload := uint64(binary.LittleEndian.Uint32(b[12:]))
	if count == 0 || count > maxChunkEvents {
		return chunk{}, fmt.Errorf("%w: chunk event count %d", ErrCorrupt, count)
	}
	if total := chunkHeaderLen + 4*count + payload; total != uint64(len(b)) {
		return chunk{}, fmt.Errorf("%w: chunk is %d bytes, header says %d", ErrCorrupt, len(b), total)
	}
	c := chunk{
		count:     int(count),
		unixNanos: int64(binary.LittleEndian.Uint64(b[16:])),
		lengths:   b[chunkHeaderLen : chunkHeaderLen+4*count],
		payload:   b[chunkHeaderLen+4*count:],
	}
	var sum uint64
	for i := 0; i < c.count; i++ {
		n := c.eventLen(i)
		if n == 0 {
			return chunk{}, fmt.Errorf("%w: chunk event %d is empty", ErrCorrupt, i)
		}
		sum += uint64(n)
	}
	if sum != payload {
		return chunk{}, fmt.Errorf("%w: chunk event lengths sum to %d, header says %d", ErrCorrupt, sum, payload)
	}
	return c, nil
}
