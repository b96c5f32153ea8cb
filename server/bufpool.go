package server

import (
	"google.golang.org/grpc/mem"

	"github.com/floe-streams/floe/internal/bufpool"
)

// BufferPool is the pool the gRPC server reads messages into
// (bufpool.Shared, which does not clear buffers); install it with
// experimental.BufferPool.
func BufferPool() mem.BufferPool { return &bufpool.Shared }
