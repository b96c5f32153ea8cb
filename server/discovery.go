package server

import (
	"context"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// Topology is what Brokers answers.
type Topology struct {
	Names        []string // advertised host names of the brokers
	ProducerPort int
	ConsumerPort int
	BaseName     string // Kubernetes naming, in large clusters
	ServiceName  string
}

// Discovery implements floev1.DiscoveryServer.
type Discovery struct {
	floev1.UnsafeDiscoveryServer
	topology func() Topology
	ready    func() error
}

var _ floev1.DiscoveryServer = (*Discovery)(nil)

// NewDiscovery answers Brokers with topology() and Status with ready(): nil
// when the broker is ready.
func NewDiscovery(topology func() Topology, ready func() error) *Discovery {
	return &Discovery{topology: topology, ready: ready}
}

// Brokers lists the brokers of the cluster.
func (d *Discovery) Brokers(context.Context, *floev1.BrokersRequest) (*floev1.BrokersResponse, error) {
	t := d.topology()
	return &floev1.BrokersResponse{
		Length:       int32(len(t.Names)),
		Names:        t.Names,
		ProducerPort: int32(t.ProducerPort),
		ConsumerPort: int32(t.ConsumerPort),
		BaseName:     optional(t.BaseName),
		ServiceName:  optional(t.ServiceName),
	}, nil
}

// Status answers when the broker is ready.
func (d *Discovery) Status(context.Context, *floev1.StatusRequest) (*floev1.StatusResponse, error) {
	if err := d.ready(); err != nil {
		return nil, Status(err)
	}
	return &floev1.StatusResponse{Status: "ok"}, nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
