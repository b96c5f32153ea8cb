package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/floe-streams/floe/store"
)

// Log is what Produce needs of the store; *store.Store satisfies it.
type Log interface {
	Append(ctx context.Context, st store.Stream, events [][]byte) (first int64, err error)
	// HoldsTopic says whether the log holds any stream of topic. Produce
	// asks only after a failed append.
	HoldsTopic(topic string) bool
}

var _ Log = (*store.Store)(nil)

// Options configures a Producer.
type Options struct {
	// ConsumerRanges is the number of sub-ranges of the broker's token range;
	// default 4.
	ConsumerRanges int
	// Limits of requests; defaults 4 MiB per request, 1 MiB per event.
	Limits Limits
	// OnAppend is called after events of a stream became durable, to wake
	// readers (the consumer groups' long polls). Optional.
	OnAppend func(store.Stream)
}

// Defaults of Options.
const (
	DefaultConsumerRanges  = 4
	DefaultMaxRequestBytes = 4 << 20
	DefaultMaxEventBytes   = 1 << 20
)

func (o *Options) setDefaults() {
	if o.ConsumerRanges == 0 {
		o.ConsumerRanges = DefaultConsumerRanges
	}
	if o.Limits.MaxRequestBytes == 0 {
		o.Limits.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.Limits.MaxEventBytes == 0 {
		o.Limits.MaxEventBytes = DefaultMaxEventBytes
	}
}

// Validate checks the options, naming the bad field.
func (o Options) Validate() error {
	switch {
	case o.ConsumerRanges < 0 || o.ConsumerRanges > 1024:
		return fmt.Errorf("broker: ConsumerRanges %d not in [1, 1024]", o.ConsumerRanges)
	case o.Limits.MaxRequestBytes < 0:
		return fmt.Errorf("broker: MaxRequestBytes %d is negative", o.Limits.MaxRequestBytes)
	case o.Limits.MaxEventBytes < 0:
		return fmt.Errorf("broker: MaxEventBytes %d is negative", o.Limits.MaxEventBytes)
	}
	return nil
}

// Producer validates produce requests and appends them to their sub-range.
type Producer struct {
	log  Log
	ring *Ring
	opts Options
}

// NewProducer returns a Producer appending to log.
func NewProducer(log Log, opts Options) (*Producer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	return &Producer{log: log, ring: NewRing(opts.ConsumerRanges), opts: opts}, nil
}

// Ring is the token ring the producer places events on.
func (p *Producer) Ring() *Ring { return p.ring }

// Limits are the effective request limits.
func (p *Producer) Limits() Limits { return p.opts.Limits }

// Ack says where the events of a request were stored.
type Ack struct {
	Stream store.Stream
	Start  int64 // offset of the first event
	Count  int
}

// ProduceBody splits and validates a raw body (see SplitBody) and produces
// its events.
func (p *Producer) ProduceBody(ctx context.Context, topic, key, contentType string, body []byte) (Ack, error) {
	if err := ValidateTopic(topic); err != nil {
		return Ack{}, err
	}
	sp := eventSlices.Get().(*[][]byte)
	events, err := splitBody(*sp, contentType, body, p.opts.Limits)
	if err != nil {
		clear((*sp)[:cap(*sp)]) // the lines split before the bad one
		eventSlices.Put(sp)
		return Ack{}, err
	}
	ack, err := p.append(ctx, topic, key, events)
	// Append does not read events once it returned.
	clear(events)
	if cap(events) <= maxPooledEvents {
		*sp = events[:0]
		eventSlices.Put(sp)
	}
	return ack, err
}

// eventSlices pools the slices ProduceBody splits bodies into: at 5,000
// NDJSON requests a second they were a fifth of the bytes the broker
// allocated.
var eventSlices = sync.Pool{New: func() any { return new([][]byte) }}

// maxPooledEvents bounds the slices eventSlices keeps.
const maxPooledEvents = 4096

// Produce validates events (see ValidateEvents) and appends them atomically
// to one sub-range: the one of key, or the next one in turn without a key. It
// returns once they are durable.
func (p *Producer) Produce(ctx context.Context, topic, key string, events [][]byte) (Ack, error) {
	if err := ValidateTopic(topic); err != nil {
		return Ack{}, err
	}
	if err := ValidateEvents(events, p.opts.Limits); err != nil {
		return Ack{}, err
	}
	return p.append(ctx, topic, key, trimEvents(events))
}

// trimEvents returns events without their surrounding JSON whitespace, as a
// body's events are stored: ValidateEvents held them to the event limit
// without it. events is returned as it is when no event has any, and is
// never modified.
func trimEvents(events [][]byte) [][]byte {
	for i, ev := range events {
		if len(trimJSONSpace(ev)) != len(ev) {
			out := slices.Clone(events)
			for j := i; j < len(out); j++ {
				out[j] = trimJSONSpace(out[j])
			}
			return out
		}
	}
	return events
}

func (p *Producer) append(ctx context.Context, topic, key string, events [][]byte) (Ack, error) {
	var st store.Stream
	if key != "" {
		st = p.ring.StreamForKey(topic, key)
	} else {
		st = p.ring.NextStream(topic)
	}
	first, err := p.log.Append(ctx, st, events)
	if err != nil {
		if key == "" && (errors.Is(err, store.ErrTooManyTopics) || !p.log.HoldsTopic(topic)) {
			// The store holds nothing of topic: refused for the topic
			// limit (no append of it can succeed until the broker restarts
			// with a higher one), or for any other reason (a full disk, a
			// failed or closed store, a cancelled request). Its turn goes,
			// so that names never stored leave nothing behind; a topic
			// created meanwhile only starts its turn again.
			p.ring.Forget(topic)
		}
		if errors.Is(err, store.ErrClosed) {
			return Ack{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return Ack{}, err
	}
	if p.opts.OnAppend != nil {
		p.opts.OnAppend(st)
	}
	return Ack{Stream: st, Start: first, Count: len(events)}, nil
}
