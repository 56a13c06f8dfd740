public import Foundation
import Glibc
public import Logging

/// A swift-log handler that writes one line per message to standard error, in the
/// form journald understands when standard error is connected to it: a `<N>`
/// syslog priority prefix and no timestamp (journald adds its own). On a terminal
/// it writes a timestamp and the level instead.
///
/// Metadata keys are printed as `key=value`; newlines in messages and values are
/// escaped so each entry stays one journal line.
public struct JournaldLogHandler: LogHandler {
    /// How lines are written.
    public enum Format: Sendable {
        /// `<6>label: message key=value` for journald.
        case journal
        /// `2026-11-22T10:00:00.123Z info label: message key=value` for people.
        case console

        /// `.journal` when standard error is the journal stream systemd set up
        /// (`$JOURNAL_STREAM` names its device and inode), else `.console`.
        public static func detect(environment: [String: String] = ProcessInfo.processInfo.environment) -> Format {
            guard let stream = environment["JOURNAL_STREAM"] else { return .console }
            var status = stat()
            guard fstat(2, &status) == 0 else { return .console }
            return stream == "\(status.st_dev):\(status.st_ino)" ? .journal : .console
        }
    }

    /// The logger's label, e.g. `osmose.journald`.
    public let label: String
    /// The chosen format.
    public let format: Format
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    /// Creates a handler; pass it to `LoggingSystem.bootstrap`.
    public init(label: String, format: Format = .detect()) {
        self.label = label
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The syslog priority journald records for each level.
    public static func priority(of level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let line = Self.render(
            level: event.level, label: label, message: event.message.description, metadata: merged, format: format, date: Date())
        let bytes = Array(line.utf8)
        // Memory: writes from `offset` to the end of the buffer, `offset < buffer.count`
        // inside the loop; the pointer does not outlive the closure.
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return }
                offset += written
            }
        }
    }

    /// The exact line written for one message, newline included.
    public static func render(
        level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, format: Format, date: Date
    ) -> String {
        var line: String
        switch format {
        case .journal:
            line = "<\(priority(of: level))>\(label): \(escape(message))"
        case .console:
            line = "\(timestamp(date)) \(level) \(label): \(escape(message))"
        }
        for key in metadata.keys.sorted() {
            let value = escape("\(metadata[key]!)")
            let quoted = value.contains(" ") || value.isEmpty ? "\"\(value.replacingOccurrences(of: "\"", with: "\\\""))\"" : value
            line += " \(key)=\(quoted)"
        }
        return line + "\n"
    }

    private static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
            .replacingOccurrences(of: "\r", with: "\\r")
    }

    private static func timestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        let milliseconds = Int((date.timeIntervalSince1970 - Double(seconds)) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let base = String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min,
            parts.tm_sec)
        return base + String(format: ".%03dZ", milliseconds)
    }
}
