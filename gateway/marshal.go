package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// marshaler renders responses in the documented JSON shapes and passes raw
// request bodies (HttpBody) through untouched.
type marshaler struct {
	out protojson.MarshalOptions
	in  protojson.UnmarshalOptions
}

var _ runtime.Marshaler = (*marshaler)(nil)

func newMarshaler() *marshaler {
	return &marshaler{
		// Zero values are part of the contract ("startOffset":"0",
		// "rangeIndex":0); fields with presence (baseName) stay omitted.
		out: protojson.MarshalOptions{EmitDefaultValues: true},
		in:  protojson.UnmarshalOptions{DiscardUnknown: true},
	}
}

func (m *marshaler) ContentType(any) string { return "application/json" }

func (m *marshaler) Marshal(v any) ([]byte, error) {
	switch t := v.(type) {
	case []*floev1.PollBatch:
		return appendPollBatches(nil, t), nil
	case pollAnswer:
		return appendPollBatches(t.lend.Get(pollAnswerSize(t.batches)), t.batches), nil
	case *floev1.Error:
		return marshalError(t), nil
	case *floev1.ProduceResponse:
		return appendProduceResponse(make([]byte, 0, 160), t), nil
	case proto.Message:
		// protojson varies its whitespace on purpose; the contract's bodies
		// are compact.
		b, err := m.out.Marshal(t)
		if err != nil {
			return nil, err
		}
		var out bytes.Buffer
		out.Grow(len(b))
		if err := json.Compact(&out, b); err != nil {
			return nil, err
		}
		return out.Bytes(), nil
	}
	return json.Marshal(v)
}

func (m *marshaler) Unmarshal(data []byte, v any) error {
	if msg, ok := v.(proto.Message); ok {
		return m.in.Unmarshal(data, msg)
	}
	return json.Unmarshal(data, v)
}

func (m *marshaler) NewDecoder(r io.Reader) runtime.Decoder {
	if rb, ok := r.(*rawBody); ok {
		return rb // a produce request's body: no closure to allocate
	}
	return runtime.DecoderFunc(func(v any) error { return m.decode(r, v) })
}

func (m *marshaler) decode(r io.Reader, v any) error {
	if hb, ok := v.(**httpbody.HttpBody); ok {
		return decodeRawBody(r, hb)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(data) == 0 {
		return io.EOF
	}
	return m.Unmarshal(data, v)
}

func (m *marshaler) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		b, err := m.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
}

// decodeRawBody hands the body read by the producer middleware (rawBody) to
// the request without copying it.
func decodeRawBody(r io.Reader, hb **httpbody.HttpBody) error {
	if rb, ok := r.(*rawBody); ok {
		*hb = &httpbody.HttpBody{ContentType: rb.contentType, Data: rb.data}
		return nil
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	*hb = &httpbody.HttpBody{Data: data}
	return nil
}

// appendPollBatches renders the poll answer of the contract:
// [{"topic":"t","token":"-9223372036854775808","rangeIndex":0,"version":1,"startOffset":"6","values":[...]}]
// with the events embedded as they were produced (they are valid JSON: the
// producer checked them). A nil b is allocated to the answer's size.
func appendPollBatches(b []byte, batches []*floev1.PollBatch) []byte {
	if b == nil {
		b = make([]byte, 0, pollAnswerSize(batches))
	}
	b = append(b, '[')
	for i, pb := range batches {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"topic":`...)
		b = appendJSONString(b, pb.GetTopic())
		b = append(b, `,"token":"`...)
		b = strconv.AppendInt(b, pb.GetToken(), 10)
		b = append(b, `","rangeIndex":`...)
		b = strconv.AppendUint(b, uint64(pb.GetRangeIndex()), 10)
		b = append(b, `,"version":`...)
		b = strconv.AppendUint(b, uint64(pb.GetVersion()), 10)
		b = append(b, `,"startOffset":"`...)
		b = strconv.AppendInt(b, pb.GetStartOffset(), 10)
		b = append(b, `","values":[`...)
		for j, v := range pb.GetValues() {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, v...)
		}
		b = append(b, "]}"...)
	}
	return append(b, ']')
}

// pollAnswerSize bounds the size of the poll answer of batches.
func pollAnswerSize(batches []*floev1.PollBatch) int {
	size := 2
	for _, pb := range batches {
		// The fixed fields take at most 139 bytes (three 20-digit
		// integers, two 10-digit ones); the topic may need escaping
		// (\u00XX: 6 bytes a byte at most).
		size += 140 + 6*len(pb.GetTopic())
		for _, v := range pb.GetValues() {
			size += len(v) + 1
		}
	}
	return size
}

// appendProduceResponse renders the produce answer, the hot path of the
// REST API, as protojson would (64-bit integers as strings), compact:
// {"topic":"t","token":"-9223372036854775808","rangeIndex":0,"version":1,"startOffset":"6","count":2}
func appendProduceResponse(b []byte, r *floev1.ProduceResponse) []byte {
	b = append(b, `{"topic":`...)
	b = appendJSONString(b, r.GetTopic())
	b = append(b, `,"token":"`...)
	b = strconv.AppendInt(b, r.GetToken(), 10)
	b = append(b, `","rangeIndex":`...)
	b = strconv.AppendUint(b, uint64(r.GetRangeIndex()), 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, uint64(r.GetVersion()), 10)
	b = append(b, `,"startOffset":"`...)
	b = strconv.AppendInt(b, r.GetStartOffset(), 10)
	b = append(b, `","count":`...)
	b = strconv.AppendUint(b, uint64(r.GetCount()), 10)
	return append(b, '}')
}

// appendJSONString appends s as a JSON string, as encoding/json writes it.
func appendJSONString(b []byte, s string) []byte {
	if plainJSONString(s) { // a valid topic always is
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, err := json.Marshal(s)
	if err != nil { // cannot happen for a string
		return append(b, `""`...)
	}
	return append(b, q...)
}

// plainJSONString reports whether s is ASCII that encoding/json writes as it
// is: no control character, quote, backslash, or <, > and & (which it
// escapes for HTML).
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// errorBody is the JSON shape of every REST error.
type errorBody struct {
	Status  int32  `json:"status"`
	Code    int32  `json:"code"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

func marshalError(e *floev1.Error) []byte {
	b, err := json.Marshal(errorBody{Status: e.GetStatus(), Code: e.GetCode(), Error: e.GetError(), Message: e.GetMessage()})
	if err != nil {
		return []byte(fmt.Sprintf(`{"status":%d}`, e.GetStatus()))
	}
	return b
}
