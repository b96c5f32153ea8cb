package metrics

import (
	"context"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/server"
)

// Producing wraps p to count the events and bytes acknowledged per topic.
// Only successful requests count: their events are durable.
func (m *Metrics) Producing(p server.Producing) server.Producing { return &producing{p: p, m: m} }

type producing struct {
	p server.Producing
	m *Metrics
}

var _ server.Producing = (*producing)(nil)

func (w *producing) Produce(ctx context.Context, topic, key string, events [][]byte) (broker.Ack, error) {
	ack, err := w.p.Produce(ctx, topic, key, events)
	if err == nil {
		n := 0
		for _, e := range events {
			n += len(e)
		}
		w.m.produced(topic, ack.Count, n)
	}
	return ack, err
}

func (w *producing) ProduceBody(ctx context.Context, topic, key, contentType string, body []byte) (broker.Ack, error) {
	ack, err := w.p.ProduceBody(ctx, topic, key, contentType, body)
	if err == nil {
		w.m.produced(topic, ack.Count, len(body))
	}
	return ack, err
}

func (m *Metrics) produced(topic string, events, bytes int) {
	m.producedEvents.WithLabelValues(topic).Add(float64(events))
	m.producedBytes.WithLabelValues(topic).Add(float64(bytes))
}

// Consuming wraps c to count the events and bytes that polls return, per
// topic.
func (m *Metrics) Consuming(c server.Consuming) server.Consuming {
	return &consuming{Consuming: c, m: m}
}

type consuming struct {
	server.Consuming
	m *Metrics
}

func (w *consuming) Poll(ctx context.Context, r group.PollRequest) ([]group.Batch, error) {
	batches, err := w.Consuming.Poll(ctx, r)
	for _, b := range batches {
		n := 0
		for _, e := range b.Events {
			n += len(e)
		}
		w.m.consumedEvents.WithLabelValues(b.Stream.Topic).Add(float64(len(b.Events)))
		w.m.consumedBytes.WithLabelValues(b.Stream.Topic).Add(float64(n))
	}
	return batches, err
}
