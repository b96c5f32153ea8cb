package broker

import "errors"

// Sentinel errors of the domain. Errors returned by this package (and by
// package group) wrap one of them with %w and a message naming the problem;
// test them with errors.Is.
var (
	// ErrInvalidParameter: a required parameter is missing or a parameter has
	// an invalid value. The message names the parameter.
	ErrInvalidParameter = errors.New("invalid parameter")
	// ErrInvalidTopic: a topic name is not 1-249 characters of [A-Za-z0-9._-].
	ErrInvalidTopic = errors.New("invalid topic name")
	// ErrEmptyBody: a produce request holds no event.
	ErrEmptyBody = errors.New("empty body")
	// ErrInvalidJSON: an event is not valid JSON. For NDJSON the message
	// names the line.
	ErrInvalidJSON = errors.New("invalid JSON")
	// ErrBodyTooLarge: a produce request is over Options.MaxRequestBytes.
	ErrBodyTooLarge = errors.New("request body too large")
	// ErrEventTooLarge: one event is over Options.MaxEventBytes.
	ErrEventTooLarge = errors.New("event too large")
	// ErrUnsupportedContentType: a body's content type is not
	// application/json or application/x-ndjson.
	ErrUnsupportedContentType = errors.New("unsupported content type")
	// ErrNotRegistered: the consumer is not registered (or was dropped after
	// it stopped polling); it must register again.
	ErrNotRegistered = errors.New("consumer not registered")
	// ErrUnavailable: the broker is shutting down.
	ErrUnavailable = errors.New("broker unavailable")
)
