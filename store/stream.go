package store

import (
	"cmp"
	"fmt"
	"strings"
)

// MaxTopicLen is the longest topic name a Stream may carry.
const MaxTopicLen = 249

// Stream names one append-only log: a sub-range of a topic in one ring
// generation. It is comparable and can be used as a map key.
type Stream struct {
	Topic      string // 1–249 chars of [A-Za-z0-9._-]
	Token      int64  // start token of the broker range
	RangeIndex uint32 // sub-range index
	Version    uint32 // ring generation
}

// String renders the stream as topic/token/rangeIndex/version, the form
// used in error messages and logs.
func (st Stream) String() string {
	return fmt.Sprintf("%s/%d/%d/%d", st.Topic, st.Token, st.RangeIndex, st.Version)
}

// validate reports whether st can be encoded in a key. The caller (the
// gateway) validates topic names for its users; the store re-checks because a
// 0x00 byte or an empty topic would break the prefix-free key encoding.
func (st Stream) validate() error {
	if err := validateTopic(st.Topic); err != nil {
		return err
	}
	return nil
}

func validateTopic(topic string) error {
	if len(topic) == 0 || len(topic) > MaxTopicLen {
		return fmt.Errorf("%w: topic length %d not in [1, %d]", ErrInvalidStream, len(topic), MaxTopicLen)
	}
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: topic %q has byte 0x%02x at %d", ErrInvalidStream, topic, c, i)
		}
	}
	return nil
}

// compareStreams orders streams the way their keys sort: topic, then token
// (signed), range index, version.
func compareStreams(a, b Stream) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Token, b.Token); c != 0 {
		return c
	}
	if c := cmp.Compare(a.RangeIndex, b.RangeIndex); c != 0 {
		return c
	}
	return cmp.Compare(a.Version, b.Version)
}
