package broker_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/floe-streams/floe/broker"
)

func TestValidateTopic(t *testing.T) {
	for _, name := range []string{"a", "product-stock", "A.b_c-9", strings.Repeat("t", broker.MaxTopicLen), "...", ".a", "-", "_"} {
		if err := broker.ValidateTopic(name); err != nil {
			t.Errorf("ValidateTopic(%q): %v", name, err)
		}
	}
	for name, mention := range map[string]string{
		"":                                 "empty",
		strings.Repeat("t", 250):           "250 characters",
		"bad topic":                        `' ' at position 3`,
		"a/b":                              `'/' at position 1`,
		"é":                                "'é' (U+00E9) at position 0",
		"a\xffb":                           "byte 0xff, not UTF-8, at position 1",
		"tab\t":                            "position 3",
		"nul\x00":                          "position 3",
		"semi;colon":                       "position 4",
		"x" + strings.Repeat("y", 9) + "%": "position 10",
		// 'é' is a letter: the rule must say which letters it means.
		"été": "use ASCII letters (a-z, A-Z), digits",
		// Within the length limit in characters, not in bytes: the
		// character is what is wrong, not a length in characters that
		// counts bytes ("250 characters" for 125 characters).
		strings.Repeat("é", 125): "'é' (U+00E9) at position 0",
		// HTTP clients remove these segments from paths.
		".":  `"." is not a topic name`,
		"..": `".." is not a topic name`,
	} {
		err := broker.ValidateTopic(name)
		if !errors.Is(err, broker.ErrInvalidTopic) {
			t.Errorf("ValidateTopic(%q) = %v, want ErrInvalidTopic", name, err)
			continue
		}
		if !strings.Contains(err.Error(), mention) {
			t.Errorf("ValidateTopic(%q) = %q, does not mention %q", name, err, mention)
		}
	}
}

var topicRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

func FuzzValidateTopic(f *testing.F) {
	for _, s := range []string{"product-stock", "", "a b", "é", strings.Repeat("x", 249), strings.Repeat("x", 250), "a\x00", "..", "Ünïcode", "a/../b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := broker.ValidateTopic(name)
		if want := topicRE.MatchString(name) && name != "." && name != ".."; want != (err == nil) {
			t.Fatalf("ValidateTopic(%q) = %v, want valid=%v", name, err, want)
		}
		if err != nil && (!errors.Is(err, broker.ErrInvalidTopic) || len(err.Error()) <= len(broker.ErrInvalidTopic.Error())) {
			t.Fatalf("ValidateTopic(%q) = %v: want ErrInvalidTopic with an explanation", name, err)
		}
	})
}
