package server

import (
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// streamBatch is one ProduceStreamRequest, decoded by Codec without copying
// its events: events and body alias the received message, which the batch
// holds until release. The store copies events into its commit before Append
// returns, so a batch is released once its produce call returned.
type streamBatch struct {
	requestID   uint64
	topic       string
	key         string
	events      [][]byte
	hasBody     bool
	contentType string
	body        []byte

	// buf holds the bytes that events and body alias; nil when they are
	// copies (see decodeCopy).
	buf mem.Buffer
}

var batchPool = sync.Pool{New: func() any { return new(streamBatch) }}

func getBatch() *streamBatch { return batchPool.Get().(*streamBatch) }

// maxPooledEvents bounds the events slice a pooled batch keeps.
const maxPooledEvents = 4096

// release frees the message the batch aliases and returns the batch to the
// pool. The batch must not be used afterwards.
func (b *streamBatch) release() {
	if b.buf != nil {
		b.buf.Free()
	}
	clear(b.events)
	events := b.events[:0]
	if cap(events) > maxPooledEvents {
		events = nil
	}
	*b = streamBatch{events: events}
	batchPool.Put(b)
}

// Field numbers of ProduceStreamRequest, Event and google.api.HttpBody.
const (
	fieldRequestID    protowire.Number = 1
	fieldTopic        protowire.Number = 2
	fieldPartitionKey protowire.Number = 3
	fieldEvents       protowire.Number = 4
	fieldBody         protowire.Number = 5

	fieldEventData protowire.Number = 1

	fieldBodyContentType protowire.Number = 1
	fieldBodyData        protowire.Number = 2
)

// decode parses a ProduceStreamRequest from b, aliasing b in events and
// body. It reports false, with the batch in an undefined state, for input
// it does not handle: malformed input, unknown fields, a field of an
// unexpected wire type, invalid UTF-8 in a string, or HttpBody extensions.
// The caller then decodes with proto (decodeCopy), which either returns
// proto's error or handles the case, so that the two decoders accept the
// same messages and decode them to the same batch.
func (b *streamBatch) decode(buf []byte) bool {
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return false
		}
		buf = buf[n:]
		switch {
		case num == fieldRequestID && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(buf)
			if n < 0 {
				return false
			}
			b.requestID = v
			buf = buf[n:]
		case typ != protowire.BytesType:
			return false
		default:
			v, n := protowire.ConsumeBytes(buf)
			if n < 0 {
				return false
			}
			buf = buf[n:]
			switch num {
			case fieldTopic, fieldPartitionKey:
				if !utf8.Valid(v) {
					return false
				}
				s := string(v) // copied: the store keeps topics
				if num == fieldTopic {
					b.topic = s
				} else {
					b.key = s
				}
			case fieldEvents:
				data, ok := decodeEvent(v)
				if !ok {
					return false
				}
				b.events = append(b.events, data)
			case fieldBody:
				if !b.decodeBody(v) {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}

// decodeEvent parses an Event; the last data field wins, as in proto.
func decodeEvent(buf []byte) (data []byte, ok bool) {
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 || num != fieldEventData || typ != protowire.BytesType {
			return nil, false
		}
		v, m := protowire.ConsumeBytes(buf[n:])
		if m < 0 {
			return nil, false
		}
		data = v
		buf = buf[n+m:]
	}
	return data, true
}

// decodeBody parses a google.api.HttpBody into the batch. A body sent twice
// is merged, as in proto: a field of the second replaces the first's.
func (b *streamBatch) decodeBody(buf []byte) bool {
	b.hasBody = true
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		v, m := protowire.ConsumeBytes(buf[n:])
		if m < 0 {
			return false
		}
		buf = buf[n+m:]
		switch num {
		case fieldBodyContentType:
			if !utf8.Valid(v) {
				return false
			}
			b.contentType = string(v)
		case fieldBodyData:
			b.body = v
		default:
			return false
		}
	}
	return true
}

// decodeCopy decodes with proto, copying events and body.
func (b *streamBatch) decodeCopy(buf []byte) error {
	var req floev1.ProduceStreamRequest
	if err := proto.Unmarshal(buf, &req); err != nil {
		return err
	}
	*b = streamBatch{
		requestID: req.GetRequestId(),
		topic:     req.GetTopic(),
		key:       req.GetPartitionKey(),
		events:    b.events[:0],
	}
	for _, e := range req.GetEvents() {
		b.events = append(b.events, e.GetData())
	}
	if body := req.GetBody(); body != nil {
		b.hasBody = true
		b.contentType = body.GetContentType()
		b.body = body.GetData()
	}
	return nil
}

// unmarshal decodes data into the batch. On the fast path the batch keeps
// a reference to the message; it is released with the batch.
func (b *streamBatch) unmarshal(data mem.BufferSlice) error {
	// A message received in one buffer is kept (a reference); one spread
	// over several HTTP/2 frames is copied into one pooled buffer.
	buf := data.MaterializeToBuffer(&sharedPool)
	if b.decode(buf.ReadOnlyData()) {
		b.buf = buf
		return nil
	}
	err := b.decodeCopy(buf.ReadOnlyData())
	buf.Free()
	return err
}

// Codec is the server's gRPC codec: proto's, except that ProduceStream
// batches are decoded without copying their events (see streamBatch).
// Install it with grpc.ForceServerCodecV2.
type Codec struct {
	proto encoding.CodecV2
}

// NewCodec returns the server codec.
func NewCodec() Codec {
	return Codec{proto: encoding.GetCodecV2("proto")}
}

// Name is the content-subtype the codec serves.
func (Codec) Name() string { return "proto" }

// Marshal encodes v with proto.
func (c Codec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

// Unmarshal decodes data into v: a streamBatch without copying, anything
// else with proto.
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	if b, ok := v.(*streamBatch); ok {
		return b.unmarshal(data)
	}
	return c.proto.Unmarshal(data, v)
}
