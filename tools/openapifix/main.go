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
//   - a parameter marked in the proto with x-floe-required, x-floe-minimum,
//     x-floe-maximum, x-floe-enum, x-floe-default or x-floe-pattern gets
//     required, minimum, maximum, enum, default or pattern: the plugin copies
//     a field's extensions to its parameter, but not those properties;
//   - a schema property marked x-floe-required is listed in its schema's
//     required properties;
//   - a $ref has no sibling properties (the plugin adds "type" to the items
//     of a repeated message, which OpenAPI ignores and linters reject);
//   - definitions that nothing references any more are dropped.
//
// It rewrites the OpenAPI 2.0 file in place, then converts it to OpenAPI 3.0
// (kin-openapi's openapi2conv) and completes what only version 3 can say:
//
//   - each path names the port that serves it: servers of the form
//     http://{host}:{port}, whose port defaults to the API's default port and
//     which carry x-floe-api (discovery, producer or consumer), so that the
//     broker can serve the document with the ports it listens on. An
//     operation serves on the port of its tag, or on those x-floe-apis lists;
//   - each request content type has its own schema: an NDJSON body is a
//     string, one JSON event per non-empty line, where OpenAPI 2.0 could only
//     give both types the schema "any JSON value";
//   - an operation marked x-floe-form-body takes its query parameters as a
//     form body too, and one marked x-floe-json-body (a schema) a JSON body:
//     OpenAPI 2.0 cannot give an operation both query parameters and a
//     body that repeats them.
//
// It is run by `make generate` after buf. Its outputs are deterministic (keys
// sorted), so `make checkgenerate` can diff them.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
)

const (
	rawJSONMarker  = "x-floe-raw-json"
	requiredMarker = "x-floe-required"
	httpBodyRef    = "#/definitions/apiHttpBody"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: openapifix OPENAPI2-FILE OPENAPI3-FILE")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "openapifix:", err)
		os.Exit(1)
	}
}

type object = map[string]any

func run(v2Path, v3Path string) error {
	in, err := os.ReadFile(v2Path)
	if err != nil {
		return err
	}
	var doc object
	if err := json.Unmarshal(in, &doc); err != nil {
		return fmt.Errorf("%s: %w", v2Path, err)
	}
	fixV2(doc)
	v2, err := encode(doc)
	if err != nil {
		return err
	}
	if err := os.WriteFile(v2Path, v2, 0o644); err != nil {
		return err
	}
	v3, err := toV3(v2)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(v3Path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(v3Path, v3, 0o644)
}

// encode writes doc as indented JSON, keys sorted.
func encode(doc object) ([]byte, error) {
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// fixV2 completes the OpenAPI 2.0 document.
func fixV2(doc object) {
	walk(doc, markRawJSON)
	walk(doc, requireMarked)
	walk(doc, dropRefSiblings)
	paths, _ := doc["paths"].(object)
	for _, item := range paths {
		for _, op := range asObject(item) {
			fixOperation(asObject(op), asObject(doc["definitions"]))
		}
	}
	pruneDefinitions(doc)
}

// markRawJSON turns a schema marked x-floe-raw-json into "any JSON value".
func markRawJSON(o object) {
	if o[rawJSONMarker] != true {
		return
	}
	delete(o, rawJSONMarker)
	if o["type"] == "array" {
		o["items"] = object{"description": "A JSON value, as produced."}
		return
	}
	delete(o, "type")
	delete(o, "format")
}

// requireMarked lists the properties of a schema marked x-floe-required in
// its required properties.
func requireMarked(o object) {
	props := asObject(o["properties"])
	names := make([]string, 0, len(props))
	for name, p := range props {
		if asObject(p)[requiredMarker] == true {
			names = append(names, name)
			delete(asObject(p), requiredMarker)
		}
	}
	if len(names) == 0 {
		return
	}
	for _, r := range asSlice(o["required"]) {
		if n, ok := r.(string); ok && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	required := make([]any, len(names))
	for i, n := range names {
		required[i] = n
	}
	o["required"] = required
}

// dropRefSiblings removes what stands beside a $ref, which OpenAPI ignores.
func dropRefSiblings(o object) {
	if _, ok := o["$ref"]; !ok {
		return
	}
	for k := range o {
		if k != "$ref" {
			delete(o, k)
		}
	}
}

// paramMarkers maps the extensions openapifix reads on parameters to
// the properties they set.
var paramMarkers = map[string]string{
	requiredMarker:   "required",
	"x-floe-default": "default",
	"x-floe-pattern": "pattern",
	"x-floe-minimum": "minimum",
	"x-floe-maximum": "maximum",
	"x-floe-enum":    "enum",
}

func fixOperation(op object, defs object) {
	for _, p := range asSlice(op["parameters"]) {
		param := asObject(p)
		for marker, property := range paramMarkers {
			if v, ok := param[marker]; ok {
				param[property] = v
				delete(param, marker)
			}
		}
		if param["in"] != "body" {
			continue
		}
		if schema := asObject(param["schema"]); schema["$ref"] == httpBodyRef {
			param["description"] = "The events: one JSON event (application/json, the default), or one JSON event per non-empty line (application/x-ndjson)."
			param["schema"] = object{
				"description": "One JSON event (application/json), or one JSON event per non-empty line (application/x-ndjson).",
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

// apis are the REST APIs of a broker, by the tag of their operations, with
// their default ports.
var apis = map[string]struct {
	name, port, description string
}{
	"Discovery": {"discovery", "9250", "Discovery API (--discovery-addr)"},
	"Producer":  {"producer", "9251", "Producer API (--producer-addr)"},
	"Consumer":  {"consumer", "9252", "Consumer API (--consumer-addr)"},
}

const (
	// apiMarker names the API of a server object in the OpenAPI 3.0
	// document: the broker serves the document with that API's port.
	apiMarker = "x-floe-api"
	// apisMarker on an operation lists the tags of the APIs whose ports
	// serve it, when that is not only the API of its own tag.
	apisMarker = "x-floe-apis"
)

// server is the server object of the API of tag.
func server(tag string) object {
	api := apis[tag]
	return object{
		"url":         "http://{host}:{port}",
		"description": api.description,
		apiMarker:     api.name,
		"variables": object{
			"host": object{"default": "localhost", "description": "Host name of the broker."},
			"port": object{"default": api.port, "description": "Port of the " + api.name + " API."},
		},
	}
}

// toV3 converts the completed OpenAPI 2.0 document v2 to OpenAPI 3.0 and
// completes it.
func toV3(v2 []byte) ([]byte, error) {
	var d2 openapi2.T
	if err := json.Unmarshal(v2, &d2); err != nil {
		return nil, err
	}
	d3, err := openapi2conv.ToV3(&d2)
	if err != nil {
		return nil, fmt.Errorf("converting to OpenAPI 3: %w", err)
	}
	b, err := json.Marshal(d3)
	if err != nil {
		return nil, err
	}
	var doc object
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	walk(doc, func(o object) { delete(o, "x-originalParamName") })
	doc["servers"] = []any{server("Discovery")}
	for path, item := range asObject(doc["paths"]) {
		var tags []string
		for _, op := range asObject(item) {
			op := asObject(op)
			for _, t := range append(asSlice(op["tags"]), asSlice(op[apisMarker])...) {
				if t, ok := t.(string); ok && !slices.Contains(tags, t) {
					tags = append(tags, t)
				}
			}
			delete(op, apisMarker)
			splitRequestBody(asObject(op["requestBody"]))
			addParameterBodies(op)
		}
		if len(tags) == 0 {
			return nil, fmt.Errorf("%s: no tag names its API", path)
		}
		sort.Slice(tags, func(i, j int) bool { return apis[tags[i]].port < apis[tags[j]].port })
		var servers []any
		for _, t := range tags {
			if _, ok := apis[t]; !ok {
				return nil, fmt.Errorf("%s: tag %q is not an API", path, t)
			}
			servers = append(servers, server(t))
		}
		asObject(item)["servers"] = servers
	}
	return encode(doc)
}

// splitRequestBody gives an NDJSON request body its own schema: a string of
// one JSON event per non-empty line. OpenAPI 2.0 gave it the schema of the
// JSON body, "any JSON value", with which generated clients encode a batch as
// one JSON string: one event.
func splitRequestBody(body object) {
	content := asObject(body["content"])
	if media, ok := content["application/x-ndjson"]; ok {
		asObject(media)["schema"] = object{
			"type":        "string",
			"description": "One JSON event per non-empty line.",
			"example":     "{\"productId\":123,\"units\":-5}\n{\"productId\":124,\"units\":2}\n",
		}
	}
	if media, ok := content["application/json"]; ok {
		asObject(media)["schema"] = object{
			"description": "One JSON event, of any JSON type: an array is one event, not a batch.",
			"example":     object{"productId": 123, "units": -5},
		}
	}
}

const (
	formBodyMarker = "x-floe-form-body"
	jsonBodyMarker = "x-floe-json-body"
)

// addParameterBodies gives an operation marked x-floe-form-body or
// x-floe-json-body an optional request body: a form of its query parameters,
// or the JSON schema of the marker.
func addParameterBodies(op object) {
	form, _ := op[formBodyMarker].(bool)
	schema := asObject(op[jsonBodyMarker])
	delete(op, formBodyMarker)
	delete(op, jsonBodyMarker)
	if !form && schema == nil {
		return
	}
	content := object{}
	if form {
		props := object{}
		for _, p := range asSlice(op["parameters"]) {
			param := asObject(p)
			if param["in"] != "query" {
				continue
			}
			prop := object{}
			for k, v := range asObject(param["schema"]) {
				prop[k] = v
			}
			if d, ok := param["description"]; ok {
				prop["description"] = d
			}
			props[param["name"].(string)] = prop
		}
		content["application/x-www-form-urlencoded"] = object{"schema": object{"type": "object", "properties": props}}
	}
	if schema != nil {
		content["application/json"] = object{"schema": schema}
	}
	desc := "The query parameters may come in a form body instead (at most 1 MiB); a parameter in both the form and the query gets 400."
	if schema != nil {
		desc += " Or in a JSON body, whose values the query's override."
	}
	op["requestBody"] = object{"required": false, "description": desc, "content": content}
}
