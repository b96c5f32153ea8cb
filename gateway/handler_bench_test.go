package gateway_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/floe-streams/floe/gateway"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// ackProducer acknowledges every produce request without storing it, so that
// the benchmark measures the REST layer alone.
type ackProducer struct {
	floev1.UnimplementedProducerServer
}

func (ackProducer) Produce(_ context.Context, r *floev1.ProduceRequest) (*floev1.ProduceResponse, error) {
	if r.GetBody() == nil || len(r.GetBody().GetData()) == 0 {
		return nil, nil
	}
	return &floev1.ProduceResponse{Topic: r.GetTopic(), StartOffset: 42}, nil
}

// BenchmarkProduceHandler is one REST produce request through the gateway
// (routing, body, metadata, response), with the headers a typical client
// sends, against a producer that acknowledges at once.
func BenchmarkProduceHandler(b *testing.B) {
	g, err := gateway.New(gateway.Services{
		Discovery: floev1.UnimplementedDiscoveryServer{},
		Producer:  ackProducer{},
		Consumer:  floev1.UnimplementedConsumerServer{},
	}, gateway.Options{})
	if err != nil {
		b.Fatal(err)
	}
	h := g.Producer()
	body := []byte(`{"run":"1f2e3d4c","seq":123,"ts":1700000000000000000,"sum":"9a8b7c6d","pad":"abcdefghijklmnopqrstuvwxyz0123456789"}`)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/topic/bench/messages", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "floe-bench")
		req.Header.Set("Accept-Encoding", "gzip")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
