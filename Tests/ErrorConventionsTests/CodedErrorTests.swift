import ErrorConventions
import Testing

/// An error of the suite's shape, as a module declares one.
private struct SampleError: CausedError {
    struct Code: ErrorCode {
        let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }
        static let notFound = Code("sample.not_found")
        static let refused = Code("sample.refused")
    }

    let code: Code
    let message: String
    let underlying: (any Error & Sendable)?

    init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }
}

/// A cause whose text must stay out of the description (it quotes a value).
private struct QuotingCause: Error, CustomStringConvertible, CustomDebugStringConvertible {
    var description: String { "invalid input syntax for type date: \"1970-13-45 Dupont\"" }
    var debugDescription: String { "QuotingCause(\(description))" }
}

@Suite("The suite's error shape (ErrorConventions)")
struct CodedErrorTests {
    @Test("Errors are equal, and hash alike, when their codes are, whatever their messages")
    func equalOnCode() {
        let first = SampleError(.notFound, "no such plan")
        let second = SampleError(.notFound, "no such hold", underlying: QuotingCause())
        #expect(first == second)
        #expect(first.hashValue == second.hashValue)
        #expect(Set([first, second]).count == 1)
        #expect(first != SampleError(.refused, "no such plan"))
    }

    @Test("The description is 'code: message', the code's description its stable string")
    func description() {
        let error = SampleError(.refused, "the plan is not approved")
        #expect(error.description == "sample.refused: the plan is not approved")
        #expect(String(describing: error) == "sample.refused: the plan is not approved")
        #expect(SampleError.Code.refused.description == "sample.refused")
        #expect("\(error.code)" == "sample.refused")
    }

    @Test("A cause appears in debugDescription only, never in the description that logs and the command line show")
    func causeRedacted() {
        let error = SampleError(.notFound, "the patient's birth date cannot be read", underlying: QuotingCause())
        #expect(!error.description.contains("Dupont"))
        #expect(error.debugDescription == "sample.not_found: the patient's birth date cannot be read [caused by: QuotingCause(invalid input syntax for type date: \"1970-13-45 Dupont\")]")
        let alone = SampleError(.notFound, "no such plan")
        #expect(alone.debugDescription == alone.description)
    }
}
