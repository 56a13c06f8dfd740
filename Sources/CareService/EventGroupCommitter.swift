package import Journal
package import Logging
package import Store

/// Commits the access events of reads and refusals in groups. Each request still
/// waits until its own events are committed before its response leaves, and fails
/// closed (503) if they cannot be; but requests that end together share one
/// statement and one WAL flush instead of paying for one each.
///
/// One group is committed at a time; events arriving meanwhile form the next
/// group, so a read waits at most for the commit in progress and its own.
///
/// One request's events never fail another's: when a group's insert fails, each
/// of its members is retried alone, and only a member whose own events cannot be
/// written fails.
package actor EventGroupCommitter {
    private struct Member {
        let events: [AccessEvent]
        let waiter: CheckedContinuation<Void, any Error>
    }

    private let pool: ConnectionPool
    private let logger: Logger
    private var pending: [Member] = []
    private var committing = false
    /// Events per group, about: a member's events are never split across groups.
    static let largestGroup = 256

    /// A committer inserting with connections of `pool`.
    package init(pool: ConnectionPool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    /// Returns once `events` (one request's) are committed to the journal intake, together.
    /// - Throws: the store's error when they cannot be.
    package func record(_ events: [AccessEvent]) async throws {
        try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Void, any Error>) in
            pending.append(Member(events: events, waiter: waiter))
            if !committing {
                committing = true
                Task { await self.commitGroups() }
            }
        }
    }

    private func commitGroups() async {
        while !pending.isEmpty {
            var count = 0
            var taken = 0
            while taken < pending.count && (taken == 0 || count + pending[taken].events.count <= Self.largestGroup) {
                count += pending[taken].events.count
                taken += 1
            }
            let group = Array(pending.prefix(taken))
            pending.removeFirst(taken)
            do {
                try await insert(group.flatMap(\.events))
                for member in group { member.waiter.resume() }
            } catch {
                guard group.count > 1 else {
                    group[0].waiter.resume(throwing: error)
                    continue
                }
                logger.warning(
                    "a group of access events was refused; recording its members one by one",
                    metadata: ["osmose.error": "\(error)", "osmose.care.group": "\(group.count)"])
                for member in group {
                    do {
                        try await insert(member.events)
                        member.waiter.resume()
                    } catch {
                        member.waiter.resume(throwing: error)
                    }
                }
            }
        }
        committing = false
    }

    /// One COPY (or one INSERT) is atomic and commits by itself: no BEGIN/COMMIT needed.
    private func insert(_ events: [AccessEvent]) async throws {
        try await pool.withConnection { connection in try await connection.perform { try $0.record(events) } }
    }
}
