package store

import (
	"encoding/hex"
	"testing"
)

// TestOnDiskFormat pins the encodings of chunk.go and keys.go: a change here
// is a change of the on-disk format and needs a new layoutVersion.
func TestOnDiskFormat(t *testing.T) {
	st := Stream{Topic: "t.x", Token: -2, RangeIndex: 3, Version: 1}
	for name, tc := range map[string]struct {
		got  []byte
		want string
	}{
		"chunk": {
			appendChunk(nil, [][]byte{[]byte(`{"a":1}`), []byte(`2`)}, 0x0102030405060708),
			"464c4301" + "bace1938" + "02000000" + "08000000" + "0807060504030201" +
				"07000000" + "01000000" + hex.EncodeToString([]byte(`{"a":1}2`)),
		},
		"chunk key": {
			offsetKey(prefixChunk, st, 258),
			"02" + hex.EncodeToString([]byte("t.x")) + "00" + "7ffffffffffffffe" + "00000003" + "00000001" + "0000000000000102",
		},
		"chunk index key": {
			offsetKey(prefixChunkIndex, st, 0),
			"03" + hex.EncodeToString([]byte("t.x")) + "00" + "7ffffffffffffffe" + "00000003" + "00000001" + "0000000000000000",
		},
		"stream meta key": {
			streamMetaKey(st),
			"04" + hex.EncodeToString([]byte("t.x")) + "00" + "7ffffffffffffffe" + "00000003" + "00000001",
		},
		"group offset key": {
			groupOffsetKey("g\x00", st),
			"05" + "6700ff" + "0001" + hex.EncodeToString([]byte("t.x")) + "00" + "7ffffffffffffffe" + "00000003" + "00000001",
		},
		"group inactive key":   {groupInactiveKey("g\x00"), "06" + "6700ff" + "0001"},
		"group inactive value": {encodeInt64Value(0x0102030405060708), "0807060504030201"},
		"layout key":           {metaLayoutKey(), "01" + hex.EncodeToString([]byte("layout"))},
		"index value": {
			func() []byte {
				b := make([]byte, indexValueLen)
				putIndexEntry(b, indexEntry{count: 2, size: 40, unixNanos: 1})
				return b
			}(),
			"02000000" + "28000000" + "0100000000000000",
		},
		"offset value":       {encodeInt64Value(258), "0201000000000000"},
		"group offset value": {encodeGroupOffsetValue(258, 0x0102030405060708), "0201000000000000" + "0807060504030201"},
		"setting key":        {metaSettingKey("consumer-ranges"), "01" + hex.EncodeToString([]byte("setting/consumer-ranges"))},
	} {
		if got := hex.EncodeToString(tc.got); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, tc.want)
		}
	}
}
