package broker

import (
	"encoding/json"
	"unicode/utf8"
)

// validJSON reports whether ev is exactly one JSON document in UTF-8.
// json.Valid alone accepts invalid UTF-8 inside strings; RFC 8259 requires
// UTF-8, and a poll answer embeds events raw, so one invalid byte would make
// the whole answer unreadable to strict clients.
func validJSON(ev []byte) bool { return utf8.Valid(ev) && json.Valid(ev) }
