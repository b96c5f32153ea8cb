package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/store"
)

// memLog is an in-memory broker.Log: one slice of events per stream.
type memLog struct {
	mu      sync.Mutex
	streams map[store.Stream][][]byte
	calls   int
	err     error // returned by Append when set
}

var _ broker.Log = (*memLog)(nil)

func newMemLog() *memLog { return &memLog{streams: map[store.Stream][][]byte{}} }

func (l *memLog) Append(_ context.Context, st store.Stream, events [][]byte) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.err != nil {
		return 0, l.err
	}
	first := int64(len(l.streams[st]))
	for _, e := range events {
		l.streams[st] = append(l.streams[st], append([]byte(nil), e...))
	}
	return first, nil
}

func (l *memLog) HoldsTopic(topic string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for st := range l.streams {
		if st.Topic == topic {
			return true
		}
	}
	return false
}

func (l *memLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, evs := range l.streams {
		n += len(evs)
	}
	return n
}

func newProducer(t testing.TB, log broker.Log, opts broker.Options) *broker.Producer {
	t.Helper()
	p, err := broker.NewProducer(log, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProducerDefaultsAndValidate(t *testing.T) {
	p := newProducer(t, newMemLog(), broker.Options{})
	if p.Ring().Ranges() != broker.DefaultConsumerRanges {
		t.Errorf("default ranges %d", p.Ring().Ranges())
	}
	if l := p.Limits(); l.MaxRequestBytes != broker.DefaultMaxRequestBytes || l.MaxEventBytes != broker.DefaultMaxEventBytes {
		t.Errorf("default limits %+v", l)
	}
	for _, o := range []broker.Options{
		{ConsumerRanges: -1}, {ConsumerRanges: 1025},
		{Limits: broker.Limits{MaxRequestBytes: -1}}, {Limits: broker.Limits{MaxEventBytes: -1}},
	} {
		if _, err := broker.NewProducer(newMemLog(), o); err == nil {
			t.Errorf("NewProducer(%+v) accepted", o)
		}
	}
}

func TestProduceBodyPlacesAndAcks(t *testing.T) {
	log := newMemLog()
	var notified []store.Stream
	p := newProducer(t, log, broker.Options{OnAppend: func(st store.Stream) { notified = append(notified, st) }})
	ctx := context.Background()

	ack, err := p.ProduceBody(ctx, "product-stock", "123", "application/json", []byte(`{"productId": 123, "units": -5}`))
	if err != nil {
		t.Fatal(err)
	}
	want := p.Ring().StreamForKey("product-stock", "123")
	if ack.Stream != want || ack.Start != 0 || ack.Count != 1 {
		t.Errorf("ack %+v, want stream %+v at 0, count 1", ack, want)
	}
	ack, err = p.ProduceBody(ctx, "product-stock", "123", "application/x-ndjson", []byte("{\"n\":1}\n{\"n\":2}\n{\"n\":3}"))
	if err != nil {
		t.Fatal(err)
	}
	if ack.Stream != want || ack.Start != 1 || ack.Count != 3 {
		t.Errorf("ndjson ack %+v, want start 1, count 3", ack)
	}
	got := log.streams[want]
	if len(got) != 4 || string(got[0]) != `{"productId": 123, "units": -5}` || string(got[3]) != `{"n":3}` {
		t.Errorf("stored %q", got)
	}
	if len(notified) != 2 || notified[0] != want {
		t.Errorf("OnAppend calls %v", notified)
	}
}

// TestProduceRejectsAtomically: a request with any bad part appends nothing
// and does not call OnAppend.
func TestProduceRejectsAtomically(t *testing.T) {
	log := newMemLog()
	notified := 0
	p := newProducer(t, log, broker.Options{
		Limits:   broker.Limits{MaxRequestBytes: 1000, MaxEventBytes: 50},
		OnAppend: func(store.Stream) { notified++ },
	})
	ctx := context.Background()
	bodies := []struct {
		topic, ct, body string
		want            error
	}{
		{"t", "application/x-ndjson", "{\"a\":1}\n{\"a\":2}\n{\"a\":", broker.ErrInvalidJSON},
		{"t", "application/x-ndjson", "{\"a\":1}\n\"" + strings.Repeat("x", 60) + "\"\n{\"a\":3}", broker.ErrEventTooLarge},
		{"t", "application/x-ndjson", strings.Repeat("{\"a\":1}\n", 200), broker.ErrBodyTooLarge},
		{"t", "text/csv", "a,b", broker.ErrUnsupportedContentType},
		{"t", "application/json; charset=latin1", "{}", broker.ErrUnsupportedContentType},
		{"t", "application/x-ndjson; charset=iso-8859-1", "{}\n{}", broker.ErrUnsupportedContentType},
		{"t", "application/json", "  ", broker.ErrEmptyBody},
		{"bad/topic", "application/json", "{}", broker.ErrInvalidTopic},
	}
	for _, b := range bodies {
		for _, key := range []string{"", "k"} {
			if _, err := p.ProduceBody(ctx, b.topic, key, b.ct, []byte(b.body)); !errors.Is(err, b.want) {
				t.Errorf("ProduceBody(%q, %q): %v, want %v", b.ct, b.body, err, b.want)
			}
		}
	}
	if _, err := p.Produce(ctx, "t", "k", [][]byte{[]byte(`{}`), []byte(`{`)}); !errors.Is(err, broker.ErrInvalidJSON) {
		t.Errorf("Produce with a bad event: %v", err)
	}
	if _, err := p.Produce(ctx, "", "k", [][]byte{[]byte(`{}`)}); !errors.Is(err, broker.ErrInvalidTopic) {
		t.Errorf("Produce to an empty topic: %v", err)
	}
	if log.calls != 0 || log.total() != 0 || notified != 0 {
		t.Errorf("rejected requests reached the log: %d appends, %d events, %d notifications", log.calls, log.total(), notified)
	}
}

func TestProduceLogErrors(t *testing.T) {
	log := newMemLog()
	notified := 0
	p := newProducer(t, log, broker.Options{OnAppend: func(store.Stream) { notified++ }})
	log.err = fmt.Errorf("append: %w", store.ErrClosed)
	_, err := p.Produce(context.Background(), "t", "", [][]byte{[]byte(`{}`)})
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("closed store: %v, want ErrUnavailable", err)
	}
	other := errors.New("disk on fire")
	log.err = other
	if _, err := p.ProduceBody(context.Background(), "t", "k", "", []byte(`{}`)); !errors.Is(err, other) {
		t.Errorf("store error: %v, want it passed through", err)
	}
	if notified != 0 {
		t.Errorf("OnAppend called %d times for failed appends", notified)
	}
}

// TestProduceKeys: a key always lands in the same sub-range, requests
// without a key are dealt evenly over the sub-ranges.
func TestProduceKeys(t *testing.T) {
	log := newMemLog()
	p := newProducer(t, log, broker.Options{ConsumerRanges: 4})
	ctx := context.Background()
	for i := range 50 {
		key := fmt.Sprintf("key-%d", i%10)
		ack, err := p.ProduceBody(ctx, "t", key, "", []byte(fmt.Sprintf(`{"i":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Stream.RangeIndex != p.Ring().RangeIndex(broker.Token(key)) {
			t.Fatalf("key %q in sub-range %d, its token is in %d", key, ack.Stream.RangeIndex, p.Ring().RangeIndex(broker.Token(key)))
		}
	}
	log = newMemLog()
	p = newProducer(t, log, broker.Options{ConsumerRanges: 4})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				if _, err := p.ProduceBody(ctx, "t", "", "", []byte(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, st := range p.Ring().Streams("t") {
		if n := len(log.streams[st]); n != 200 {
			t.Errorf("sub-range %d has %d keyless events, want 200 (of 800 over 4)", st.RangeIndex, n)
		}
	}
}

// discardLog acknowledges appends without keeping them.
type discardLog struct{}

func (discardLog) Append(context.Context, store.Stream, [][]byte) (int64, error) { return 0, nil }

func (discardLog) HoldsTopic(string) bool { return true }

// BenchmarkProduceBody is the broker's part of a REST NDJSON request of 100
// events of 200 bytes, without the store.
func BenchmarkProduceBody(b *testing.B) {
	p, err := broker.NewProducer(discardLog{}, broker.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var body []byte
	for i := range 100 {
		body = fmt.Appendf(body, "{\"seq\":%d,\"pad\":%q}\n", i, strings.Repeat("x", 180))
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ProduceBody(context.Background(), "bench", "", broker.ContentTypeNDJSON, body); err != nil {
			b.Fatal(err)
		}
	}
}

// Typed events are stored without their surrounding whitespace, as a body's
// are: the event limit, which counts them without it, then bounds what is
// stored and delivered. The caller's slice is left as it was.
func TestProduceTrimsTypedEvents(t *testing.T) {
	log := newMemLog()
	p := newProducer(t, log, broker.Options{Limits: broker.Limits{MaxRequestBytes: 1 << 20, MaxEventBytes: 8}})
	padded := []byte("1" + strings.Repeat(" ", 1000))
	events := [][]byte{[]byte(`{"a":1}`), []byte("\t[2]\r\n"), padded}
	orig := slices.Clone(events)
	ack, err := p.Produce(context.Background(), "t", "k", events)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(events, orig, func(a, b []byte) bool { return &a[0] == &b[0] && len(a) == len(b) }) {
		t.Error("Produce modified the caller's slice")
	}
	want := [][]byte{[]byte(`{"a":1}`), []byte(`[2]`), []byte(`1`)}
	if got := log.streams[ack.Stream]; !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("stored %q, want %q", got, want)
	}
}
