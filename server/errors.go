package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/floe-streams/floe/broker"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/store"
)

// errorKind is how one domain error reaches clients.
type errorKind struct {
	sentinel error
	grpc     codes.Code
	code     floev1.ErrorCode
	http     int
}

// errorTable maps the domain's sentinel errors, matched with errors.Is, to
// their gRPC code, stable error code and HTTP status. First match wins.
var errorTable = []errorKind{
	{broker.ErrInvalidTopic, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_INVALID_TOPIC, http.StatusBadRequest},
	{broker.ErrInvalidParameter, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, http.StatusBadRequest},
	{broker.ErrEmptyBody, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_EMPTY_BODY, http.StatusBadRequest},
	{broker.ErrInvalidJSON, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_INVALID_JSON, http.StatusBadRequest},
	{broker.ErrBodyTooLarge, codes.ResourceExhausted, floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, http.StatusRequestEntityTooLarge},
	{broker.ErrEventTooLarge, codes.ResourceExhausted, floev1.ErrorCode_ERROR_CODE_EVENT_TOO_LARGE, http.StatusRequestEntityTooLarge},
	// A request of millions of tiny events can encode over the store's chunk
	// limit even under the body limit.
	{store.ErrAppendTooLarge, codes.ResourceExhausted, floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, http.StatusRequestEntityTooLarge},
	{broker.ErrUnsupportedContentType, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_TYPE, http.StatusUnsupportedMediaType},
	{broker.ErrNotRegistered, codes.FailedPrecondition, floev1.ErrorCode_ERROR_CODE_CONSUMER_NOT_REGISTERED, http.StatusConflict},
	// Not a retryable shortage (no ResourceExhausted, no 429): the limit
	// does not go away by waiting.
	{store.ErrTooManyTopics, codes.FailedPrecondition, floev1.ErrorCode_ERROR_CODE_TOO_MANY_TOPICS, http.StatusConflict},
	{broker.ErrUnavailable, codes.Unavailable, floev1.ErrorCode_ERROR_CODE_UNAVAILABLE, http.StatusServiceUnavailable},
	{store.ErrClosed, codes.Unavailable, floev1.ErrorCode_ERROR_CODE_UNAVAILABLE, http.StatusServiceUnavailable},
	// After a failed disk write the store refuses writes until the broker
	// restarts; nothing of a refused write was stored. The write that
	// failed (store.ErrWriteFailed alone) stays internal: its outcome is
	// unknown.
	{store.ErrWritesRefused, codes.Unavailable, floev1.ErrorCode_ERROR_CODE_UNAVAILABLE, http.StatusServiceUnavailable},
	// Short of disk space the store takes no events until space comes back;
	// nothing of a refused request was stored.
	{store.ErrDiskFull, codes.ResourceExhausted, floev1.ErrorCode_ERROR_CODE_DISK_FULL, http.StatusInsufficientStorage},
	{context.DeadlineExceeded, codes.DeadlineExceeded, floev1.ErrorCode_ERROR_CODE_TIMEOUT, http.StatusGatewayTimeout},
	{context.Canceled, codes.Canceled, floev1.ErrorCode_ERROR_CODE_TIMEOUT, 499},
}

// Status converts a domain error into a gRPC status error with an ErrorInfo
// detail. Unknown errors are internal: the request was not acknowledged.
func Status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status (a gRPC-level error)
	}
	kind := errorKind{grpc: codes.Internal, code: floev1.ErrorCode_ERROR_CODE_INTERNAL, http: http.StatusInternalServerError}
	for _, k := range errorTable {
		if errors.Is(err, k.sentinel) {
			kind = k
			break
		}
	}
	return newStatus(kind.grpc, kind.code, kind.http, err.Error())
}

// ErrorOf is the REST error body of a domain error.
func ErrorOf(err error) *floev1.Error {
	st, _ := status.FromError(Status(err))
	return ErrorFromStatus(st)
}

// ErrorFromStatus turns a gRPC status into the REST error body: the HTTP
// status and code of its ErrorInfo detail, or ones derived from its gRPC code.
func ErrorFromStatus(st *status.Status) *floev1.Error {
	e := &floev1.Error{Message: st.Message()}
	for _, d := range st.Details() {
		if info, ok := d.(*floev1.ErrorInfo); ok {
			e.Status, e.Code = info.GetHttpStatus(), int32(info.GetCode())
		}
	}
	if e.Status == 0 {
		e.Status, e.Code = statusForCode(st.Code())
	}
	e.Error = ErrorName(floev1.ErrorCode(e.Code))
	return e
}

// ErrorName is the short name of an error code: "INVALID_TOPIC".
func ErrorName(c floev1.ErrorCode) string {
	name := c.String()
	const prefix = "ERROR_CODE_"
	if len(name) > len(prefix) && name[:len(prefix)] == prefix {
		return name[len(prefix):]
	}
	return name
}

func newStatus(c codes.Code, code floev1.ErrorCode, httpStatus int, msg string) error {
	st, err := status.New(c, msg).WithDetails(&floev1.ErrorInfo{Code: code, HttpStatus: int32(httpStatus)})
	if err != nil {
		return status.Error(c, msg)
	}
	return st.Err()
}

// statusForCode is the fallback for statuses without ErrorInfo (raised by
// gRPC or the gateway runtime itself, e.g. an unparsable query parameter).
func statusForCode(c codes.Code) (int32, int32) {
	switch c {
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest, int32(floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER)
	case codes.NotFound:
		return http.StatusNotFound, int32(floev1.ErrorCode_ERROR_CODE_ROUTE_NOT_FOUND)
	case codes.Unimplemented:
		return http.StatusMethodNotAllowed, int32(floev1.ErrorCode_ERROR_CODE_METHOD_NOT_ALLOWED)
	case codes.ResourceExhausted:
		return http.StatusRequestEntityTooLarge, int32(floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE)
	case codes.FailedPrecondition:
		return http.StatusConflict, int32(floev1.ErrorCode_ERROR_CODE_CONSUMER_NOT_REGISTERED)
	case codes.Unavailable:
		return http.StatusServiceUnavailable, int32(floev1.ErrorCode_ERROR_CODE_UNAVAILABLE)
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout, int32(floev1.ErrorCode_ERROR_CODE_TIMEOUT)
	case codes.Canceled:
		return 499, int32(floev1.ErrorCode_ERROR_CODE_TIMEOUT)
	}
	return http.StatusInternalServerError, int32(floev1.ErrorCode_ERROR_CODE_INTERNAL)
}

// shuttingDown is the error of a call or stream that the broker ends at
// shutdown: Unavailable with its ErrorInfo, so the client retries elsewhere
// or after the restart.
func shuttingDown(msg string) error {
	return newStatus(codes.Unavailable, floev1.ErrorCode_ERROR_CODE_UNAVAILABLE, http.StatusServiceUnavailable, msg)
}

// UnknownMethod answers the calls of methods the server does not serve
// with Unimplemented and its ErrorInfo (ROUTE_NOT_FOUND, 404), naming the
// services that services lists (called per call, so it may read the
// server's registry, e.g. grpc.Server.GetServiceInfo). Install it with
// grpc.UnknownServiceHandler: gRPC's own answer has no ErrorInfo.
func UnknownMethod(services func() []string) grpc.StreamHandler {
	return func(_ any, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		return newStatus(codes.Unimplemented, floev1.ErrorCode_ERROR_CODE_ROUTE_NOT_FOUND, http.StatusNotFound,
			fmt.Sprintf("unknown method %s: this port serves %s", method, strings.Join(services(), ", ")))
	}
}

// decodeTarget carries a request message through Codec.Unmarshal. gRPC
// answers a message that does not decode (invalid UTF-8 in a string, a
// malformed encoding) with Internal before any handler runs, and a client
// retrying an Internal error would send it forever. So the handlers of the
// broker's services decode into a decodeTarget: Codec keeps the error in
// it instead of returning it, and the handler answers InvalidArgument with
// an ErrorInfo (badMessage).
type decodeTarget struct {
	msg any
	err error
}

// badMessage is the error of a request message that does not decode.
func badMessage(err error) error {
	return newStatus(codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, http.StatusBadRequest,
		"the request message does not decode: "+err.Error())
}

// recvMsg receives the next message of a stream into m (see decodeTarget).
func recvMsg(stream grpc.ServerStream, m any) error {
	t := decodeTarget{msg: m}
	if err := stream.RecvMsg(&t); err != nil {
		return err
	}
	if t.err != nil {
		return badMessage(t.err)
	}
	return nil
}

// withDecodeErrors returns desc with every handler answering a request
// message that does not decode with InvalidArgument (see decodeTarget):
// unary handlers through their decoder, stream handlers through the
// stream's RecvMsg. DecodeErrorsRegistrar registers every service with it,
// on a server that uses Codec.
func withDecodeErrors(desc *grpc.ServiceDesc) *grpc.ServiceDesc {
	out := *desc
	out.Streams = slices.Clone(desc.Streams)
	for i := range out.Streams {
		h := out.Streams[i].Handler
		out.Streams[i].Handler = func(srv any, stream grpc.ServerStream) error {
			return h(srv, decodingStream{stream})
		}
	}
	out.Methods = slices.Clone(desc.Methods)
	for i := range out.Methods {
		h := out.Methods[i].Handler
		out.Methods[i].Handler = func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			return h(srv, ctx, func(v any) error {
				t := decodeTarget{msg: v}
				if err := dec(&t); err != nil {
					return err
				}
				if t.err != nil {
					return badMessage(t.err)
				}
				return nil
			}, ic)
		}
	}
	return &out
}

// decodingStream receives messages through a decodeTarget (recvMsg).
type decodingStream struct{ grpc.ServerStream }

func (s decodingStream) RecvMsg(m any) error {
	if _, ok := m.(*decodeTarget); ok {
		return s.ServerStream.RecvMsg(m) // recvMsg already wrapped it
	}
	return recvMsg(s.ServerStream, m)
}

// DecodeErrorsRegistrar registers every service with withDecodeErrors, so
// that services registered by their own packages (health, reflection) answer
// messages that do not decode as the broker's do.
type DecodeErrorsRegistrar struct{ *grpc.Server }

// RegisterService registers desc, with withDecodeErrors, and impl.
func (r DecodeErrorsRegistrar) RegisterService(desc *grpc.ServiceDesc, impl any) {
	r.Server.RegisterService(withDecodeErrors(desc), impl)
}
