// Command openapifix completes the OpenAPI document that protoc-gen-openapiv2
// writes from proto/, where the plugin cannot describe Floe's raw bodies:
//
//   - a schema marked in the proto with the extension x-floe-raw-json holds
//     events embedded as JSON values, not base64 strings: its type (or the
//     type of its items) is removed, which in JSON Schema means any JSON value;
//   - a request body of type google.api.HttpBody is passed raw (one JSON event,
//     or NDJSON), not as the {contentType, data} object the plugin describes;
//   - a response documented as 204 has no body, and an operation whose
//     response message is empty answers 204, not the plugin's default 200;
//   - a query parameter marked in the proto with x-floe-required,
//     x-floe-minimum, x-floe-maximum or x-floe-enum gets required, minimum,
//     maximum or enum: the plugin copies a field's extensions to its query
//     parameter, but not those properties;
//   - definitions that nothing references any more are dropped.
//
// It is run by `make generate` after buf and rewrites the file in place. Its
// output is deterministic (keys sorted), so `make checkgenerate` can diff it.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

const (
	rawJSONMarker = "x-floe-raw-json"
	httpBodyRef   = "#/definitions/apiHttpBody"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: openapifix FILE")
		os.Exit(2)
	}
	if err := fix(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "openapifix:", err)
		os.Exit(1)
	}
}

type object = map[string]any

func fix(path string) error {
	in, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc object
	if err := json.Unmarshal(in, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	walk(doc, markRawJSON)
	paths, _ := doc["paths"].(object)
	for _, item := range paths {
		for _, op := range asObject(item) {
			fixOperation(asObject(op), asObject(doc["definitions"]))
		}
	}
	pruneDefinitions(doc)

	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// markRawJSON turns a schema marked x-floe-raw-json into "any JSON value".
func markRawJSON(o object) {
	if o[rawJSONMarker] != true {
		return
	}
	if o["type"] == "array" {
		o["items"] = object{"description": "A JSON value, exactly as produced."}
		return
	}
	delete(o, "type")
	delete(o, "format")
}

// queryMarkers maps the extensions openapifix reads on query parameters to
// the properties they set.
var queryMarkers = map[string]string{
	"x-floe-required": "required",
	"x-floe-minimum":  "minimum",
	"x-floe-maximum":  "maximum",
	"x-floe-enum":     "enum",
}

func fixOperation(op object, defs object) {
	for _, p := range asSlice(op["parameters"]) {
		param := asObject(p)
		for marker, property := range queryMarkers {
			if v, ok := param[marker]; ok {
				param[property] = v
				delete(param, marker)
			}
		}
		if param["in"] != "body" {
			continue
		}
		if schema := asObject(param["schema"]); schema["$ref"] == httpBodyRef {
			param["schema"] = object{
				"description": "One JSON event (application/json), or one JSON event per non-empty line (application/x-ndjson).",
				rawJSONMarker: true,
			}
		}
	}
	responses := asObject(op["responses"])
	r204, ok := responses["204"]
	if !ok {
		return
	}
	delete(asObject(r204), "schema")
	// The plugin always documents a 200 with the response message; when that
	// message is empty, the operation answers 204 instead.
	ref, _ := asObject(asObject(responses["200"])["schema"])["$ref"].(string)
	def := asObject(defs[strings.TrimPrefix(ref, "#/definitions/")])
	if ref != "" && len(asObject(def["properties"])) == 0 {
		delete(responses, "200")
	}
}

// pruneDefinitions removes definitions that are not referenced, repeatedly,
// since removing one can orphan the ones it referenced.
func pruneDefinitions(doc object) {
	defs := asObject(doc["definitions"])
	for {
		refs := map[string]bool{}
		walk(doc, func(o object) {
			if ref, ok := o["$ref"].(string); ok {
				refs[strings.TrimPrefix(ref, "#/definitions/")] = true
			}
		})
		var unused []string
		for name := range defs {
			if !refs[name] {
				unused = append(unused, name)
			}
		}
		if len(unused) == 0 {
			return
		}
		sort.Strings(unused)
		for _, name := range unused {
			delete(defs, name)
		}
	}
}

// walk calls fn on every JSON object of v, parents first.
func walk(v any, fn func(object)) {
	switch t := v.(type) {
	case object:
		fn(t)
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walk(t[k], fn)
		}
	case []any:
		for _, e := range t {
			walk(e, fn)
		}
	}
}

func asObject(v any) object {
	o, _ := v.(object)
	return o
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}
