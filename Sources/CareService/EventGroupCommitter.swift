import Journal
import Logging
import Store

/// Commits the access events of reads in groups. Each read still waits until its
/// own event is committed before its response leaves, and fails closed (503) if
/// that commit fails; but reads that arrive together share one transaction and
/// one WAL flush instead of paying for one each.
///
/// One group is committed at a time; events arriving meanwhile form the next
/// group, so a read waits at most for the commit in progress and its own.
actor EventGroupCommitter {
    private let pool: ConnectionPool
    private var pending: [(event: AccessEvent, waiter: CheckedContinuation<Void, any Error>)] = []
    private var committing = false
    static let largestGroup = 256

    init(pool: ConnectionPool) {
        self.pool = pool
    }

    /// Returns once `event` is committed to the journal intake.
    /// - Throws: the store's error when the group's transaction fails.
    func record(_ event: AccessEvent) async throws {
        try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Void, any Error>) in
            pending.append((event, waiter))
            if !committing {
                committing = true
                Task { await self.commitGroups() }
            }
        }
    }

    private func commitGroups() async {
        while !pending.isEmpty {
            let group = Array(pending.prefix(Self.largestGroup))
            pending.removeFirst(group.count)
            let events = group.map(\.event)
            do {
                // One COPY (or one INSERT) is atomic and commits by itself: no BEGIN/COMMIT needed.
                try await pool.withConnection { connection in try await connection.perform { try $0.record(events) } }
                for member in group { member.waiter.resume() }
            } catch {
                for member in group { member.waiter.resume(throwing: error) }
            }
        }
        committing = false
    }
}
