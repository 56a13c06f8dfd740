/// The shape every error of the suite takes (conventions.md, "Errors"): a stable
/// code that logs and the command line show, a message that never carries patient
/// data or key material, equality on the code alone. An error type declares its
/// codes and stored fields; this module gives the equality, the hashing and the
/// one-line description that each module used to write again.
///
/// ```swift
/// public struct JournalError: CodedError {
///     public struct Code: ErrorCode {
///         public let rawValue: String
///         private init(_ rawValue: String) { self.rawValue = rawValue }
///         public static let notFound = Code("journal.not_found")
///     }
///     public let code: Code
///     public let message: String
/// }
/// ```
public protocol CodedError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kinds of failure of this error type.
    associatedtype Code: ErrorCode
    /// What kind of failure this is.
    var code: Code { get }
    /// What went wrong and what to do; never patient data or key material.
    var message: String { get }
}

/// A stable identifier for a kind of failure; its ``rawValue`` (e.g.
/// `journal.not_found`) is part of the suite's interface: operators search logs
/// for it and scripts match it, so it never changes once released.
public protocol ErrorCode: Hashable, Sendable, CustomStringConvertible {
    /// The stable string, `<module>.<kind>`.
    var rawValue: String { get }
}

extension ErrorCode {
    public var description: String { rawValue }
}

extension CodedError {
    /// Errors are equal when their codes are: the message is for people, and a test
    /// or a caller deciding what to do matches on the kind of failure.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
    /// `<code>: <message>`: what logs and the command line print.
    public var description: String { "\(code): \(message)" }
}

/// A ``CodedError`` that keeps the error that caused it. The cause can quote values
/// (a server message, a path, a value that did not parse), so it appears in
/// ``debugDescription`` only, never in ``description``.
public protocol CausedError: CodedError, CustomDebugStringConvertible {
    /// The error that caused this one, if any.
    var underlying: (any Error & Sendable)? { get }
}

extension CausedError {
    /// The description followed by the cause's own debug description.
    public var debugDescription: String {
        guard let underlying else { return description }
        return "\(description) [caused by: \(String(reflecting: underlying))]"
    }
}
