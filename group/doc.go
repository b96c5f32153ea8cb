// Package group is Floe's consumer-group coordinator: the domain logic behind
// the Consumer API's register, poll, commit and goodbye.
//
// It owns the membership of groups (registered consumer ids, kept in memory
// and dropped after Options.MemberTimeout without a request), the assignment
// of a topic's sub-range streams to the members of a group (dealt in a stable
// order, so a stream has at most one reader in a group at a time), the read
// position of each member in its streams, and the group's committed offsets,
// which it keeps durable through the small Log interface (the store).
//
// Delivery is at-least-once. A poll commits the position reached by the
// previous poll of the same consumer before it reads on, without waiting for
// the fsync of that commit (a commit lost in a crash only delivers events
// again); Commit and Goodbye commit it too and wait for the fsync. When a
// stream changes owner (a member joins, leaves or expires), the new owner
// starts from the last committed offset and the old owner's uncommitted
// position is discarded, so events it polled but did not acknowledge are
// delivered again. onNewGroup (StartPosition) decides where a
// group without a committed offset starts; a "latest" start is committed at
// once so that nothing produced afterwards is skipped.
//
// Long polls wait for Notify, which the producer calls once events of a
// stream are durable. The package knows nothing of HTTP or gRPC; its errors
// wrap the sentinels of package broker, which package server converts.
package group
