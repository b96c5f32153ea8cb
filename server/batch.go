package server

import (
	"sync"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/internal/bufpool"
)

// produceBatch is one ProduceStreamRequest or ProduceRequest, decoded by
// Codec without copying its events: events and body alias the received
// message, which the batch holds until release. The store copies events
// into its commit before Append returns, so a batch is released once its
// produce call returned.
type produceBatch struct {
	layout *batchLayout

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

var batchPool = sync.Pool{New: func() any { return new(produceBatch) }}

// getBatch returns an empty batch for messages of layout l.
func getBatch(l *batchLayout) *produceBatch {
	b := batchPool.Get().(*produceBatch)
	b.layout = l
	return b
}

// size is about the memory the batch holds: the buffer of the received
// message that its events and body alias, at its capacity (a pool's size
// class; or, for a batch decoded by copy, its events and body), the strings
// decoded out of it, and the slice of events, whose 24 bytes per event can
// be several times the message for events of a byte or two.
func (b *produceBatch) size() int {
	n := cap(b.events)*int(unsafe.Sizeof([]byte(nil))) + len(b.topic) + len(b.key) + len(b.contentType)
	if b.buf != nil {
		return n + cap(b.buf.ReadOnlyData())
	}
	n += len(b.body)
	for _, e := range b.events {
		n += len(e)
	}
	return n
}

// maxPooledEvents bounds the events slice a pooled batch keeps.
const maxPooledEvents = 4096

// release frees the message the batch aliases and returns the batch to the
// pool. The batch must not be used afterwards.
func (b *produceBatch) release() {
	if b.buf != nil {
		b.buf.Free()
	}
	clear(b.events)
	events := b.events[:0]
	if cap(events) > maxPooledEvents {
		events = nil
	}
	*b = produceBatch{events: events}
	batchPool.Put(b)
}

// batchLayout is the field numbers of a produce message, and its proto
// type for the messages the fast decoder leaves to proto.
type batchLayout struct {
	requestID, topic, key, events, body protowire.Number // 0: no such field
	newMessage                          func() proto.Message
	fromMessage                         func(proto.Message) (requestID uint64, topic, key string, events []*floev1.Event, body *httpbody.HttpBody)
}

var (
	streamLayout = batchLayout{requestID: 1, topic: 2, key: 3, events: 4, body: 5,
		newMessage: func() proto.Message { return new(floev1.ProduceStreamRequest) },
		fromMessage: func(m proto.Message) (uint64, string, string, []*floev1.Event, *httpbody.HttpBody) {
			r := m.(*floev1.ProduceStreamRequest)
			return r.GetRequestId(), r.GetTopic(), r.GetPartitionKey(), r.GetEvents(), r.GetBody()
		}}
	unaryLayout = batchLayout{topic: 1, key: 2, events: 3, body: 4,
		newMessage: func() proto.Message { return new(floev1.ProduceRequest) },
		fromMessage: func(m proto.Message) (uint64, string, string, []*floev1.Event, *httpbody.HttpBody) {
			r := m.(*floev1.ProduceRequest)
			return 0, r.GetTopic(), r.GetPartitionKey(), r.GetEvents(), r.GetBody()
		}}
)

// Field numbers of Event and google.api.HttpBody.
const (
	fieldEventData protowire.Number = 1

	fieldBodyContentType protowire.Number = 1
	fieldBodyData        protowire.Number = 2
)

// decode parses a message of the batch's layout from buf, aliasing buf in
// events and body. It reports false, with the batch in an undefined state, for input
// it does not handle: malformed input, unknown fields, a field of an
// unexpected wire type, invalid UTF-8 in a string, or HttpBody extensions.
// The caller then decodes with proto (decodeCopy), which either returns
// proto's error or handles the case, so that the two decoders accept the
// same messages and decode them to the same batch.
func (b *produceBatch) decode(buf []byte) bool {
	l := b.layout
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return false
		}
		buf = buf[n:]
		switch {
		case num == l.requestID && num != 0 && typ == protowire.VarintType:
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
			case l.topic, l.key:
				if !utf8.Valid(v) {
					return false
				}
				s := string(v) // copied: the store keeps topics
				if num == l.topic {
					b.topic = s
				} else {
					b.key = s
				}
			case l.events:
				data, ok := decodeEvent(v)
				if !ok {
					return false
				}
				b.events = append(b.events, data)
			case l.body:
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
func (b *produceBatch) decodeBody(buf []byte) bool {
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
func (b *produceBatch) decodeCopy(buf []byte) error {
	m := b.layout.newMessage()
	if err := proto.Unmarshal(buf, m); err != nil {
		return err
	}
	requestID, topic, key, events, body := b.layout.fromMessage(m)
	*b = produceBatch{
		layout:    b.layout,
		requestID: requestID,
		topic:     topic,
		key:       key,
		events:    b.events[:0],
	}
	for _, e := range events {
		b.events = append(b.events, e.GetData())
	}
	if body != nil {
		b.hasBody = true
		b.contentType = body.GetContentType()
		b.body = body.GetData()
	}
	return nil
}

// unmarshal decodes data into the batch. On the fast path the batch keeps
// a reference to the message; it is released with the batch.
func (b *produceBatch) unmarshal(data mem.BufferSlice, pool mem.BufferPool) error {
	// A batch decoded again (gRPC decodes a second message of a unary call
	// into the same value, then fails the call) starts over, and frees the
	// message it held.
	if b.buf != nil {
		b.buf.Free()
	}
	*b = produceBatch{layout: b.layout, events: b.events[:0]}
	// A message received in one buffer is kept (a reference); one spread
	// over several HTTP/2 frames is copied into one buffer of pool.
	buf := data.MaterializeToBuffer(pool)
	if b.decode(buf.ReadOnlyData()) {
		b.buf = buf
		return nil
	}
	err := b.decodeCopy(buf.ReadOnlyData())
	buf.Free()
	return err
}

// Codec is the server's gRPC codec: proto's, except that Produce and
// ProduceStream requests are decoded without copying their events (see
// produceBatch), and that Poll replies give their lent buffers back once
// encoded (see lentPoll).
// Install it with grpc.ForceServerCodecV2.
type Codec struct {
	proto encoding.CodecV2
	// pool receives the messages that arrive in several buffers.
	pool mem.BufferPool
}

// NewCodec returns the server codec.
func NewCodec() Codec {
	return Codec{proto: encoding.GetCodecV2("proto"), pool: &bufpool.Shared}
}

// Name is the content-subtype the codec serves.
func (Codec) Name() string { return "proto" }

// Marshal encodes v with proto. A Poll reply (*lentPoll) is encoded, which
// copies its events, and then its lent buffers are taken back.
func (c Codec) Marshal(v any) (mem.BufferSlice, error) {
	if p, ok := v.(*lentPoll); ok {
		out, err := c.proto.Marshal(p.resp)
		p.lender.Release()
		return out, err
	}
	return c.proto.Marshal(v)
}

// Unmarshal decodes data into v: a produceBatch without copying, anything
// else with proto. Into a decodeTarget, it keeps the error in it and returns
// nil.
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	if t, ok := v.(*decodeTarget); ok {
		// The handler answers the error (see decodeTarget).
		t.err = c.Unmarshal(data, t.msg)
		return nil
	}
	if b, ok := v.(*produceBatch); ok {
		return b.unmarshal(data, c.pool)
	}
	return c.proto.Unmarshal(data, v)
}
