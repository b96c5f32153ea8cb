package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/internal/testgroup"
	"github.com/floe-streams/floe/server"
	"github.com/floe-streams/floe/store"
)

// newConsumer is the Consumer service over a coordinator and a store in
// memory.
func newConsumer(t *testing.T) (*server.Consumer, *group.Coordinator, *store.Store) {
	t.Helper()
	c, st := testgroup.New(t)
	return server.NewConsumer(c), c, st
}

// wantInvalid checks that err is InvalidArgument with the ErrorInfo of
// INVALID_PARAMETER (400) and the message want.
func wantInvalid(t *testing.T, what string, err error, want string) {
	t.Helper()
	st, _ := status.FromError(err)
	e := server.ErrorFromStatus(st)
	if st.Code() != codes.InvalidArgument || e.GetCode() != int32(floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER) || e.GetStatus() != 400 {
		t.Errorf("%s: %v (%v), want InvalidArgument, INVALID_PARAMETER, 400", what, err, e)
	} else if st.Message() != want {
		t.Errorf("%s: message\n %s\nwant\n %s", what, st.Message(), want)
	}
}

// gRPC Register has no body limit: the limit on the topics of a
// registration, the one REST meets too, refuses a large one before
// anything is stored.
func TestRegisterTopicLimit(t *testing.T) {
	s, c, st := newConsumer(t)
	ctx := context.Background()
	for _, n := range []int{group.MaxTopics + 1, 100_000} {
		topics := make([]string, n)
		for i := range topics {
			topics[i] = fmt.Sprintf("t%d", i)
		}
		_, err := s.Register(ctx, &floev1.RegisterRequest{ConsumerId: "c", Topic: topics})
		wantInvalid(t, fmt.Sprintf("%d topics", n), err,
			fmt.Sprintf("invalid parameter: topic: %d topics in one registration, the maximum is %d", n, group.MaxTopics))
	}
	if s := c.Stats(); s.Members != 0 || len(s.Groups) != 0 {
		t.Fatalf("a refused registration was kept: %+v", s)
	}
	if offsets, err := st.GroupOffsets(); err != nil || len(offsets) != 0 {
		t.Fatalf("a refused registration committed %d offsets (%v)", len(offsets), err)
	}
}

// Poll, Commit and Goodbye refuse an id that Register refuses with
// InvalidArgument, as Register does, rather than FailedPrecondition (not
// registered), on which a client registers again, in a loop.
func TestCallsRefuseIDsRegisterRefuses(t *testing.T) {
	s, _, _ := newConsumer(t)
	ctx := context.Background()
	id := strings.Repeat("x", group.MaxIDLen+1)
	want := fmt.Sprintf("invalid parameter: consumerId is %d bytes, the maximum is %d", group.MaxIDLen+1, group.MaxIDLen)
	_, err := s.Register(ctx, &floev1.RegisterRequest{ConsumerId: id, Topic: []string{"t"}})
	wantInvalid(t, "Register", err, want)
	_, err = s.Poll(ctx, &floev1.PollRequest{ConsumerId: id})
	wantInvalid(t, "Poll", err, want)
	_, err = s.Commit(ctx, &floev1.CommitRequest{ConsumerId: id})
	wantInvalid(t, "Commit", err, want)
	_, err = s.Goodbye(ctx, &floev1.GoodbyeRequest{ConsumerId: id})
	wantInvalid(t, "Goodbye", err, want)
}
