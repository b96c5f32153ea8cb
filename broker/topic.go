package broker

import (
	"fmt"
	"unicode/utf8"
)

// MaxTopicLen is the longest topic name.
const MaxTopicLen = 249

// ValidateTopic checks that name is 1-249 characters of ASCII letters,
// digits, '.', '_' and '-', and neither "." nor "..". The error wraps ErrInvalidTopic and says what is wrong.
func ValidateTopic(name string) error {
	if name == "" {
		return fmt.Errorf("%w: the topic name is empty", ErrInvalidTopic)
	}
	// Characters first: every valid one is a byte, so the length below
	// counts characters, and the first invalid one's byte index is its
	// position.
	for i := 0; i < len(name); i++ {
		if !topicChar(name[i]) {
			return fmt.Errorf("%w: %q has %s at position %d; use ASCII letters (a-z, A-Z), digits, '.', '_' and '-'",
				ErrInvalidTopic, name, describeChar(name[i:]), i)
		}
	}
	if len(name) > MaxTopicLen {
		return fmt.Errorf("%w: %d characters, the maximum is %d", ErrInvalidTopic, len(name), MaxTopicLen)
	}
	if name == "." || name == ".." {
		// As Kafka: HTTP clients remove such segments from a URL's path
		// (/v1/topic/./messages is /v1/topic/messages to curl), so they
		// could not produce to it.
		return fmt.Errorf("%w: %q is not a topic name: clients remove \".\" and \"..\" from URLs", ErrInvalidTopic, name)
	}
	return nil
}

func topicChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// describeChar names the character s starts with: quoted, and with its code
// point when it is not ASCII ('é' (U+00E9)); a byte that starts no valid
// UTF-8 character is named as a byte (byte 0xff).
func describeChar(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	switch {
	case r == utf8.RuneError && n <= 1:
		return fmt.Sprintf("byte 0x%02x, not UTF-8,", s[0])
	case r >= utf8.RuneSelf:
		return fmt.Sprintf("%q (U+%04X)", r, r)
	}
	return fmt.Sprintf("%q", r)
}
