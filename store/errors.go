package store

import "errors"

// Sentinel errors. Every error returned by the package that matches one of
// these wraps it with %w, so callers test with errors.Is, never with ==.
var (
	// ErrClosed is returned by every method called after Close, and by
	// Appends that were still queued (not yet taken into a batch) when Close
	// ran.
	ErrClosed = errors.New("store: closed")

	// ErrCorrupt is wrapped by every error that reports data failing its
	// checksum or structural checks: a chunk, an index entry, a key. The
	// wrapping error names the stream and offset. Corrupt data is never
	// returned to the caller.
	ErrCorrupt = errors.New("store: corrupt data")

	// ErrOffsetOutOfRange is returned by Read when from is beyond the high
	// watermark of the stream, and by CommitGroupOffset for a negative offset.
	ErrOffsetOutOfRange = errors.New("store: offset out of range")

	// ErrEmptyAppend is returned by Append when events is empty or one of the
	// events has length 0.
	ErrEmptyAppend = errors.New("store: empty append")

	// ErrAppendTooLarge is returned by Append when the encoded chunk would
	// exceed Options.MaxAppendBytes.
	ErrAppendTooLarge = errors.New("store: append too large")

	// ErrInvalidStream is returned when a Stream cannot be encoded in a key
	// (empty or over-long topic, or a byte outside [A-Za-z0-9._-]).
	ErrInvalidStream = errors.New("store: invalid stream")

	// ErrInvalidGroup is returned for an empty consumer-group name.
	ErrInvalidGroup = errors.New("store: invalid consumer group")

	// ErrWriteFailed is wrapped by the error of a write that failed inside
	// Pebble (WAL write or fsync), and of the appends of its commit and of
	// the commits written after it: whether they reach the disk is unknown.
	// Pebble's WAL writer keeps its first error forever, so from then on the
	// store refuses writes (ErrWritesRefused, which wraps ErrWriteFailed too:
	// test for it first) until it is reopened; reads keep working on what
	// was acknowledged.
	ErrWriteFailed = errors.New("store: disk write failed")

	// ErrWritesRefused is wrapped, together with ErrWriteFailed, by the
	// error of a write refused because an earlier one failed: nothing of it
	// was written, so a client may retry it elsewhere or after a reopen.
	ErrWritesRefused = errors.New("store: refusing writes until reopened")

	// ErrDiskFull is wrapped by the error of an Append refused because the
	// volume of the store has less than Options.MinFreeDiskBytes free.
	// Nothing of it was written; it may be retried once space comes back.
	ErrDiskFull = errors.New("store: the disk is nearly full, refusing events")

	// ErrTooManyTopics is wrapped by the error of an Append that would
	// create a topic beyond Options.MaxTopics. Nothing of it was written;
	// appends to the topics the store holds go on.
	ErrTooManyTopics = errors.New("store: too many topics")

	// ErrNoSpace is wrapped by the error of Open when the disk is too full
	// to flush what Pebble replays from its write-ahead log.
	ErrNoSpace = errors.New("store: no space left on the disk")
)
