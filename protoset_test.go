package floe_test

import (
	"os"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// gen/floe.protoset is what clients in other languages load: it must hold
// every file the services need, imports included, and the error details'
// google.rpc.Status.
func TestProtosetIsSelfContained(t *testing.T) {
	b, err := os.ReadFile("gen/floe.protoset")
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	// NewFiles fails on an import the set does not hold.
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		t.Fatalf("the protoset does not stand alone: %v", err)
	}
	for _, name := range []protoreflect.FullName{
		"floe.v1.Discovery", "floe.v1.Producer", "floe.v1.Consumer", "floe.v1.ErrorInfo", "google.rpc.Status",
	} {
		if _, err := files.FindDescriptorByName(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
