package group

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/store"
)

// Defaults applied by New to zero fields of Options.
const (
	DefaultMaxPollBytes  = 2 << 20
	DefaultMaxPollWait   = 30 * time.Second
	DefaultMemberTimeout = 2 * time.Minute
	// DefaultOffsetRetention is how long the committed offsets of a group
	// without members are kept (Kafka's offsets.retention.minutes).
	DefaultOffsetRetention = 7 * 24 * time.Hour
)

// DefaultGroup is the group of a registration that names none.
const DefaultGroup = "default"

// MaxIDLen is the longest consumer id and group name, in bytes.
const MaxIDLen = 256

// MaxTopics is the most topics one registration may name, counted as named.
// A group keeps a position, a committed start offset and four metric series
// per sub-range of each of its topics: with the default 4 sub-ranges, a
// registration of 1,000 topics commits 4,000 offsets and took 0.1 s and kept
// 2 MB (on an in-memory store); one of 10,000 took 1 s and 16 MB, and added
// 160,000 series to every scrape. Consumers read a handful of topics; an
// application with more spreads them over several consumer ids.
const MaxTopics = 1000

// MaxStreams is the most sub-ranges one registration may name: its distinct
// topics times the sub-ranges of a topic (--consumer-ranges). It is what
// MaxTopics allows with the default 4 sub-ranges. With 1,024 sub-ranges, a
// registration of 100 topics (102,400 sub-ranges) took 6-7 s on disk and
// 280-350 MB, and one of 1,000 topics 88 s and about 1 GB.
const MaxStreams = 4096

// Log is what the coordinator needs of the store. *store.Store satisfies it.
type Log interface {
	// ReadInto returns events of st from offset from on, copied into buf
	// while it has room (see store.Store.ReadInto; buf may be nil).
	ReadInto(buf []byte, st store.Stream, from int64, maxBytes, maxEvents int) (store.Batch, []byte, error)
	// HighWatermark is the next offset to be assigned in st.
	HighWatermark(st store.Stream) int64
	// EarliestOffset is the earliest offset of st that retention kept.
	EarliestOffset(st store.Stream) int64
	// CommitGroupOffset durably records the position of group in st.
	CommitGroupOffset(group string, st store.Stream, offset int64) error
	// CommitGroupOffsetSoon records it without waiting for an fsync: it
	// becomes durable shortly after (see store.Store.CommitGroupOffsetSoon).
	CommitGroupOffsetSoon(group string, st store.Stream, offset int64) error
	// SyncGroupOffsets makes every position recorded by
	// CommitGroupOffsetSoon before the call durable.
	SyncGroupOffsets() error
	// GroupOffset returns the committed position of group in st; ok is
	// false if there is none.
	GroupOffset(group string, st store.Stream) (int64, bool, error)
	// GroupOffsets returns every committed position (for Stats and offset
	// retention).
	GroupOffsets() ([]store.GroupOffset, error)
	// DeleteGroup durably deletes every committed position of a group, and
	// its inactive record.
	DeleteGroup(group string) error
	// SetGroupsInactive durably records, in one write, when groups became
	// inactive (a zero time deletes a group's record); GroupsInactive
	// returns the records.
	SetGroupsInactive(records map[string]time.Time) error
	GroupsInactive() (map[string]time.Time, error)
	// ClearGroupsInactive durably deletes every such record.
	ClearGroupsInactive() error
}

var _ Log = (*store.Store)(nil)

// StartPosition is where a group that has no committed offset for a stream
// starts reading it (the onNewGroup parameter).
type StartPosition int

const (
	// StartFromLatest (the default) starts at the high watermark of the
	// stream when the group first gets it: only events produced afterwards
	// are delivered. The start is committed at once.
	StartFromLatest StartPosition = iota
	// StartFromEarliest starts at the earliest retained event. The start is
	// committed at once, as for StartFromLatest: the group's first decision
	// holds for its later members.
	StartFromEarliest
)

// String returns the wire name: "startFromLatest" or "startFromEarliest".
func (p StartPosition) String() string {
	switch p {
	case StartFromLatest:
		return "startFromLatest"
	case StartFromEarliest:
		return "startFromEarliest"
	}
	return fmt.Sprintf("StartPosition(%d)", int(p))
}

func (p StartPosition) valid() bool { return p == StartFromLatest || p == StartFromEarliest }

// ParseStartPosition parses the onNewGroup parameter: "" or
// "startFromLatest" (StartFromLatest), "startFromEarliest"
// (StartFromEarliest); case is ignored. Other values give an error wrapping
// broker.ErrInvalidParameter.
func ParseStartPosition(s string) (StartPosition, error) {
	switch {
	case s == "" || strings.EqualFold(s, "startFromLatest"):
		return StartFromLatest, nil
	case strings.EqualFold(s, "startFromEarliest"):
		return StartFromEarliest, nil
	}
	return 0, fmt.Errorf("%w: onNewGroup must be startFromLatest or startFromEarliest, not %q",
		broker.ErrInvalidParameter, s)
}

// Options configures a Coordinator. Streams is required; zero values of the
// other fields get defaults.
type Options struct {
	// Streams lists the sub-range streams of a topic (broker.Ring.Streams).
	// Required. It must return the same streams for a topic every time; it
	// is called with the coordinator's lock held and must not call it.
	Streams func(topic string) []store.Stream
	// MaxPollBytes caps the payload of a poll (a request's MaxBytes is
	// capped by it). Default 2 MiB.
	MaxPollBytes int
	// MaxPollWait caps the long-poll wait of a poll. Default 30s.
	MaxPollWait time.Duration
	// MemberTimeout: a member that has not polled, registered or committed
	// for this long is dropped and its streams go to the others. A member
	// blocked in a long poll is never dropped. Default 2 minutes.
	MemberTimeout time.Duration
	// OffsetRetention: the committed offsets of a group that has had no
	// member for this long are deleted, counted from the moment it became
	// inactive: the loss of its last member or, for a group with offsets and
	// no such record in the Log (it had members when the previous
	// coordinator stopped), New. That moment is recorded in the Log, so
	// restarts do not reset it. A member that joins it
	// later starts as in a new group (onNewGroup). Negative: kept forever.
	// Default DefaultOffsetRetention.
	OffsetRetention time.Duration
	// Logger receives membership changes and the reads of polls that
	// fail. Default: discards.
	Logger *slog.Logger
	// Now is the clock of member expiry. Default time.Now.
	Now func() time.Time
}

// Validate reports the first invalid field, by name. Zero fields are valid
// except Streams.
func (o Options) Validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("group: invalid Options.%s = %v: %s", field, v, why)
	}
	switch {
	case o.Streams == nil:
		return errors.New("group: Options.Streams is required")
	case o.MaxPollBytes < 0:
		return bad("MaxPollBytes", o.MaxPollBytes, "must be >= 0 (0 = default)")
	case o.MaxPollWait < 0:
		return bad("MaxPollWait", o.MaxPollWait, "must be >= 0 (0 = default)")
	case o.MemberTimeout < 0:
		return bad("MemberTimeout", o.MemberTimeout, "must be >= 0 (0 = default)")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.MaxPollBytes == 0 {
		o.MaxPollBytes = DefaultMaxPollBytes
	}
	if o.MaxPollWait == 0 {
		o.MaxPollWait = DefaultMaxPollWait
	}
	if o.MemberTimeout == 0 {
		o.MemberTimeout = DefaultMemberTimeout
	}
	if o.OffsetRetention == 0 {
		o.OffsetRetention = DefaultOffsetRetention
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
