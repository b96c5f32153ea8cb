package gateway

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/server"
)

// grpc-gateway's query parser names protobuf fields; the REST API names
// parameters as its documentation spells them.
func TestRESTParameterNames(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`parsing field "max_bytes": strconv.ParseUint: parsing "abc": invalid syntax`, `parameter maxBytes: "abc" is not a non-negative integer`},
		{`parsing field "timeout": strconv.ParseUint: parsing "99999999999": value out of range`, `parameter timeout: "99999999999" is out of range: it must be at most 4294967295`},
		{`parsing field "commit": strconv.ParseBool: parsing "yes": invalid syntax`, `parameter commit: "yes" is not true or false`},
		{`too many values for field "max_bytes": 1, 2`, `parameter maxBytes: more than one value (1, 2); give it once`},
		{`too many values for field "consumer_id": a, b, c`, `parameter consumerId: more than one value (a, b, c); give it once`},
		{`too many values for field "partition_key": , x`, `parameter partitionKey: more than one value (, x); give it once`},
		{`too many values for field "on_new_group": a, b`, `parameter onNewGroup: more than one value (a, b); give it once`},
		{`parsing list "topic": something new`, `parameter topic: something new`},
		{`parsing field "max_events": something new`, `parameter maxEvents: something new`},
		{`invalid URL escape "%zz"`, `the query string does not parse: invalid URL escape "%zz"`},
		{`invalid semicolon separator in query`, `the query string does not parse: invalid semicolon separator in query`},
		{`something new`, `something new`},
	} {
		if got := restParameterNames(tc.in); got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	// Floe's own errors (with ErrorInfo) are left as they are, even when
	// they quote something that looks like the parser's messages.
	msg := `too many values for field "max_bytes": 1, 2`
	if e := errorBodyOf(server.Status(invalidParameter(msg))); e.GetStatus() != 400 || e.GetMessage() != msg {
		t.Errorf("Floe's message rewritten: %v", e)
	}
	if e := errorBodyOf(status.Error(codes.InvalidArgument, msg)); e.GetStatus() != 400 || e.GetMessage() != `parameter maxBytes: more than one value (1, 2); give it once` {
		t.Errorf("the parser's error: %v", e)
	}
}

// invalidParameter is an error of the message msg, exactly, that wraps
// broker.ErrInvalidParameter.
type invalidParameter string

func (e invalidParameter) Error() string { return string(e) }
func (invalidParameter) Unwrap() error   { return broker.ErrInvalidParameter }
