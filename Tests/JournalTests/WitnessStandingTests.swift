import Foundation
@testable import Journal
import Store
import Testing
import TestSupport

@Suite("A witness's standing against the database, for the console")
struct WitnessStandingTests {
    @Test("The grace period runs from the oldest checkpoint the witness lacks, not the newest; its end counts as behind")
    func classification() {
        let grace: Int64 = 30_000_000
        let now: Int64 = 1_000_000_000_000
        func classify(held: Int64, latest: Int64?, next: Int64?) -> WitnessStanding {
            WitnessStanding.classify(coveredSize: 7, heldID: held, latestID: latest, nextIssuedAt: next, now: now, grace: grace)
        }
        // Lacks #5 (issued 40 s ago) and #6 (1 s ago): behind since #5.
        #expect(classify(held: 4, latest: 6, next: now - 40_000_000) == .behind(coveredSize: 7, missingSince: now - 40_000_000))
        #expect(classify(held: 5, latest: 6, next: now - 1_000_000) == .notCopiedYet(coveredSize: 7))
        #expect(classify(held: 5, latest: 6, next: now - grace) == .behind(coveredSize: 7, missingSince: now - grace), "exactly the grace period: behind")
        #expect(classify(held: 5, latest: 6, next: now - grace + 1) == .notCopiedYet(coveredSize: 7))
        #expect(classify(held: 6, latest: 6, next: nil) == .holdsLatest)
        #expect(classify(held: 7, latest: 6, next: nil) == .holdsLatest, "issued after the newest read")
        #expect(classify(held: 3, latest: nil, next: nil) == .holdsLatest, "none read, one issued since")
        #expect(classify(held: 5, latest: 6, next: nil) == .unknownToDatabase, "a newer one was read, none follows now: the database changed")
    }

    @Test("Against real checkpoints: latest, not copied yet within the grace period, behind after it, unknown to the database, empty")
    func standings() async throws {
        try await JournalFixture.with("witness-standing") { fixture in
            var state = try await fixture.journald.perform { try JournalDatabase.loadState(on: $0) }
            try await fixture.submit(10)
            state = try await fixture.drain(state)
            let first = try await fixture.checkpoint(state)
            try await fixture.submit(5, offset: 10)
            state = try await fixture.drain(first.state)
            let second = try await fixture.checkpoint(state)
            // A reissue: a third checkpoint of the same size as the second.
            let third = try await fixture.checkpoint(second.state)
            #expect(third.checkpoint.treeSize == second.checkpoint.treeSize && third.checkpoint.note != second.checkpoint.note)
            let latest = third.checkpoint

            func standing(_ note: String?, now: Int64) async throws -> WitnessStanding {
                try await fixture.admin.perform { try WitnessStanding.of(note: note, latest: latest, now: now, on: $0) }
            }
            #expect(try await standing(latest.note, now: latest.issuedAt) == .holdsLatest)
            // The first note lacks the second, issued (in this test) just now: a copy under way;
            // a minute later, the witness is behind since the second was issued.
            let justAfter = second.checkpoint.issuedAt + 1_000_000
            #expect(try await standing(first.checkpoint.note, now: justAfter) == .notCopiedYet(coveredSize: 10))
            let minuteAfter = second.checkpoint.issuedAt + 60_000_000
            #expect(try await standing(first.checkpoint.note, now: minuteAfter) == .behind(coveredSize: 10, missingSince: second.checkpoint.issuedAt))
            // The second note shares its size with the latest (the reissue): found by the note, not the size.
            #expect(
                try await standing(second.checkpoint.note, now: latest.issuedAt + 60_000_000) == .behind(coveredSize: 15, missingSince: latest.issuedAt))
            // A checkpoint the database does not hold: signed by the right key, but never issued.
            let forged = try Checkpoint(origin: fixture.signer.verifierKey.name, size: 15, rootHash: Array(repeating: 7, count: 32)).signed(by: [fixture.signer])
            #expect(try await standing(forged, now: minuteAfter) == .unknownToDatabase)
            // A latest read before the witness's note was issued (a caller that read the database first).
            let ahead = try await fixture.admin.perform { try WitnessStanding.of(note: latest.note, latest: first.checkpoint, now: minuteAfter, on: $0) }
            #expect(ahead == .holdsLatest, "the note is in the database, newer than the latest read: it was issued after that read")
            #expect(try await standing(nil, now: minuteAfter) == .empty)
            #expect(try await standing("not a note\n", now: minuteAfter) == .empty)
        }
    }
}
