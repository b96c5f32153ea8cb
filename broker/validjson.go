package broker

import "encoding/json"

// validJSON reports whether ev is exactly one JSON document.
func validJSON(ev []byte) bool { return json.Valid(ev) }
