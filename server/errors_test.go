package server_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/floe-streams/floe/broker"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/server"
	"github.com/floe-streams/floe/store"
)

func TestStatusMapsWrappedSentinels(t *testing.T) {
	cases := []struct {
		err  error
		grpc codes.Code
		code floev1.ErrorCode
		http int32
	}{
		{broker.ErrInvalidTopic, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_INVALID_TOPIC, 400},
		{broker.ErrInvalidParameter, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, 400},
		{broker.ErrEmptyBody, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_EMPTY_BODY, 400},
		{broker.ErrInvalidJSON, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_INVALID_JSON, 400},
		{broker.ErrBodyTooLarge, codes.ResourceExhausted, floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, 413},
		{broker.ErrEventTooLarge, codes.ResourceExhausted, floev1.ErrorCode_ERROR_CODE_EVENT_TOO_LARGE, 413},
		{store.ErrAppendTooLarge, codes.ResourceExhausted, floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, 413},
		{broker.ErrUnsupportedContentType, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_TYPE, 415},
		{broker.ErrNotRegistered, codes.FailedPrecondition, floev1.ErrorCode_ERROR_CODE_CONSUMER_NOT_REGISTERED, 409},
		{broker.ErrUnavailable, codes.Unavailable, floev1.ErrorCode_ERROR_CODE_UNAVAILABLE, 503},
		{store.ErrClosed, codes.Unavailable, floev1.ErrorCode_ERROR_CODE_UNAVAILABLE, 503},
		{fmt.Errorf("%w (%w: injected)", store.ErrWritesRefused, store.ErrWriteFailed), codes.Unavailable, floev1.ErrorCode_ERROR_CODE_UNAVAILABLE, 503},
		{fmt.Errorf("%w: injected", store.ErrWriteFailed), codes.Internal, floev1.ErrorCode_ERROR_CODE_INTERNAL, 500},
		{context.DeadlineExceeded, codes.DeadlineExceeded, floev1.ErrorCode_ERROR_CODE_TIMEOUT, 504},
		{context.Canceled, codes.Canceled, floev1.ErrorCode_ERROR_CODE_TIMEOUT, 499},
		{errors.New("disk on fire"), codes.Internal, floev1.ErrorCode_ERROR_CODE_INTERNAL, 500},
	}
	for _, tc := range cases {
		// Wrapped twice, as the domain does: matching must use errors.Is.
		err := fmt.Errorf("outer: %w", fmt.Errorf("line 3: %w: detail", tc.err))
		st, ok := status.FromError(server.Status(err))
		if !ok || st.Code() != tc.grpc {
			t.Errorf("%v: code %v, want %v", tc.err, st.Code(), tc.grpc)
			continue
		}
		if st.Message() != err.Error() {
			t.Errorf("%v: message %q, want the error's %q", tc.err, st.Message(), err.Error())
		}
		e := server.ErrorFromStatus(st)
		if e.GetCode() != int32(tc.code) || e.GetStatus() != tc.http || e.GetError() != server.ErrorName(tc.code) {
			t.Errorf("%v: REST error %v, want code %v status %d", tc.err, e, tc.code, tc.http)
		}
	}
	if server.Status(nil) != nil {
		t.Error("Status(nil) is not nil")
	}
	// A status passes through unchanged; one without ErrorInfo gets its
	// REST form from its gRPC code.
	in := status.Error(codes.InvalidArgument, "bad query")
	if got := server.Status(in); got != in {
		t.Errorf("Status changed a status: %v", got)
	}
	e := server.ErrorFromStatus(status.New(codes.InvalidArgument, "bad query"))
	if e.GetStatus() != 400 || e.GetCode() != int32(floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER) || e.GetMessage() != "bad query" {
		t.Errorf("fallback: %v", e)
	}
	if got := server.ErrorName(floev1.ErrorCode_ERROR_CODE_INVALID_JSON); got != "INVALID_JSON" {
		t.Errorf("ErrorName: %q", got)
	}
}
