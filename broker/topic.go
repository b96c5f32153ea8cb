package broker

import "fmt"

// MaxTopicLen is the longest topic name.
const MaxTopicLen = 249

// ValidateTopic checks that name is 1-249 characters of letters, digits,
// '.', '_' and '-'. The error wraps ErrInvalidTopic and says what is wrong.
func ValidateTopic(name string) error {
	if name == "" {
		return fmt.Errorf("%w: the topic name is empty", ErrInvalidTopic)
	}
	if len(name) > MaxTopicLen {
		return fmt.Errorf("%w: %d characters, the maximum is %d", ErrInvalidTopic, len(name), MaxTopicLen)
	}
	for i := 0; i < len(name); i++ {
		if !topicChar(name[i]) {
			return fmt.Errorf("%w: %q has %q at position %d; use letters, digits, '.', '_' and '-'",
				ErrInvalidTopic, name, rune(name[i]), i)
		}
	}
	return nil
}

func topicChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}
