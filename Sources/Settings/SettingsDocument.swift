import Foundation
import Yams

/// A YAML settings file read strictly: every key must be one the reader expects,
/// every value of the expected type, and every problem is reported with the file,
/// line and column where it is.
///
/// Readers for configuration and for each policy file are written against this
/// type; Yams itself stays an implementation detail.
public struct SettingsDocument {
    /// The file's path, as given.
    public let file: String
    private let root: Node?

    /// Parses `text` as the contents of `file`.
    /// - Throws: ``ConfigurationError/Code/malformed`` with the position libyaml reports.
    public init(file: String, text: String) throws {
        self.file = file
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw Self.translate(error, file: file)
        }
    }

    /// Reads and parses the file at `path`.
    /// - Throws: ``ConfigurationError/Code/unreadable`` or ``ConfigurationError/Code/malformed``.
    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(.unreadable, file: path, line: nil, column: nil, reason: "cannot read the file (missing, or no permission)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(.malformed, file: path, line: nil, column: nil, reason: "the file is not UTF-8 text")
        }
        try self.init(file: path, text: text)
    }

    /// The top-level mapping; an empty file reads as an empty mapping.
    /// - Parameter allowedKeys: the keys a reader understands; any other is refused.
    public func root(allowedKeys: [String]) throws -> SettingsMapping {
        guard let root else { return SettingsMapping(file: file, path: "", mapping: nil, mark: nil, allowed: allowedKeys) }
        return try SettingsMapping(node: root, file: file, path: "", allowedKeys: allowedKeys)
    }

    static func translate(_ error: YamlError, file: String) -> ConfigurationError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ConfigurationError(.malformed, file: file, line: mark.line, column: mark.column, reason: "malformed YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = Array(Set(duplicates)).sorted().joined(separator: ", ")
            return ConfigurationError(
                .malformed, file: file, line: context.mark.line, column: context.mark.column,
                reason: "\(keys) is set more than once in the same mapping")
        default:
            return ConfigurationError(.malformed, file: file, line: nil, column: nil, reason: "malformed YAML: \(error)")
        }
    }
}

/// One mapping of a settings file, with typed accessors that report positions.
public struct SettingsMapping {
    let file: String
    /// The dotted path of this mapping from the root (`database`), empty at the root.
    public let path: String
    private let entries: [(key: String, value: Node, mark: Mark?)]
    private let mark: Mark?

    init(file: String, path: String, mapping: Node.Mapping?, mark: Mark?, allowed: [String]) {
        self.file = file
        self.path = path
        self.mark = mark
        self.entries = mapping.map { mapping in mapping.map { ($0.key.string ?? "", $0.value, $0.key.mark) } } ?? []
    }

    init(node: Node, file: String, path: String, allowedKeys: [String]) throws {
        guard case .mapping(let mapping) = node else {
            throw ConfigurationError(
                .invalidValue, file: file, line: node.mark?.line, column: node.mark?.column,
                reason: "\(path.isEmpty ? "the document" : path) must be a mapping of settings")
        }
        self.init(file: file, path: path, mapping: mapping, mark: node.mark, allowed: allowedKeys)
        var seen: Set<String> = []
        for entry in entries {
            let qualified = qualify(entry.key)
            guard allowedKeys.contains(entry.key) else {
                let suggestion = Self.closest(to: entry.key, in: allowedKeys).map { " (did you mean \(qualify($0))?)" } ?? ""
                throw ConfigurationError(
                    .unknownSetting, file: file, line: entry.mark?.line, column: entry.mark?.column,
                    reason: "unknown setting \(qualified)\(suggestion); expected one of: \(allowedKeys.map(qualify).joined(separator: ", "))")
            }
            guard seen.insert(entry.key).inserted else {
                throw ConfigurationError(
                    .malformed, file: file, line: entry.mark?.line, column: entry.mark?.column, reason: "\(qualified) is set twice")
            }
        }
    }

    private func qualify(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    private func entry(_ key: String) -> (key: String, value: Node, mark: Mark?)? { entries.first { $0.key == key } }

    func entryNode(_ key: String) -> Node? { entry(key)?.value }

    private func invalid(_ key: String, _ node: Node, _ expectation: String) -> ConfigurationError {
        ConfigurationError(
            .invalidValue, file: file, line: node.mark?.line, column: node.mark?.column, reason: "\(qualify(key)) must be \(expectation)")
    }

    private func scalar(_ key: String, _ expectation: String) throws -> (text: String, node: Node)? {
        guard let found = entry(key) else { return nil }
        guard case .scalar(let scalar) = found.value else { throw invalid(key, found.value, expectation) }
        return (scalar.string, found.value)
    }

    /// True when the key is present.
    public func contains(_ key: String) -> Bool { entry(key) != nil }

    /// A nested mapping, or nil when absent.
    public func mapping(_ key: String, allowedKeys: [String]) throws -> SettingsMapping? {
        guard let found = entry(key) else { return nil }
        return try SettingsMapping(node: found.value, file: file, path: qualify(key), allowedKeys: allowedKeys)
    }

    /// A required string.
    public func string(_ key: String) throws -> String {
        guard let value = try optionalString(key) else { throw missing(key) }
        return value
    }

    /// A string, or nil when absent.
    public func optionalString(_ key: String) throws -> String? { try scalar(key, "a string")?.text }

    /// An integer within `range`, or `defaultValue` when absent.
    public func integer(_ key: String, in range: ClosedRange<Int>, default defaultValue: Int? = nil) throws -> Int {
        guard let (text, node) = try scalar(key, "an integer") else {
            guard let defaultValue else { throw missing(key) }
            return defaultValue
        }
        guard let value = Int(text) else { throw invalid(key, node, "an integer from \(range.lowerBound) to \(range.upperBound)") }
        guard range.contains(value) else {
            throw invalid(key, node, "from \(range.lowerBound) to \(range.upperBound), not \(value)")
        }
        return value
    }

    /// A boolean (`true` or `false`), or `defaultValue` when absent.
    public func boolean(_ key: String, default defaultValue: Bool? = nil) throws -> Bool {
        guard let (text, node) = try scalar(key, "true or false") else {
            guard let defaultValue else { throw missing(key) }
            return defaultValue
        }
        switch text {
        case "true": return true
        case "false": return false
        default: throw invalid(key, node, "true or false")
        }
    }

    /// One of `choices`, or `defaultValue` when absent.
    public func choice(_ key: String, from choices: [String], default defaultValue: String? = nil) throws -> String {
        guard let (text, node) = try scalar(key, "one of \(choices.joined(separator: ", "))") else {
            guard let defaultValue else { throw missing(key) }
            return defaultValue
        }
        guard choices.contains(text) else { throw invalid(key, node, "one of \(choices.joined(separator: ", ")), not \(text)") }
        return text
    }

    /// A duration written `500ms`, `30s`, `5min`, `2h` or `7d`, within `range`, or `defaultValue` when absent.
    public func duration(_ key: String, in range: ClosedRange<Duration>, default defaultValue: Duration? = nil) throws -> Duration {
        guard let (text, node) = try scalar(key, "a duration such as 30s") else {
            guard let defaultValue else { throw missing(key) }
            return defaultValue
        }
        guard let value = Self.parseDuration(text) else {
            throw invalid(key, node, "a duration: a number followed by ms, s, min, h or d (e.g. 30s)")
        }
        guard range.contains(value) else { throw invalid(key, node, "between \(range.lowerBound) and \(range.upperBound)") }
        return value
    }

    /// A list of strings, or an empty list when absent.
    public func strings(_ key: String) throws -> [String] {
        guard let found = entry(key) else { return [] }
        guard case .sequence(let sequence) = found.value else { throw invalid(key, found.value, "a list of strings") }
        return try sequence.map { item in
            guard case .scalar(let scalar) = item else { throw invalid(key, item, "a list of strings") }
            return scalar.string
        }
    }

    /// An error for a setting the caller found semantically wrong, at that setting's position.
    public func error(_ key: String, _ reason: String) -> ConfigurationError {
        let position = entry(key)?.value.mark ?? mark
        return ConfigurationError(.invalidValue, file: file, line: position?.line, column: position?.column, reason: "\(qualify(key)): \(reason)")
    }

    private func missing(_ key: String) -> ConfigurationError {
        ConfigurationError(.missingSetting, file: file, line: mark?.line, column: mark?.column, reason: "\(qualify(key)) is required")
    }

    static func parseDuration(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isNumber }
        guard let amount = Int64(digits), !digits.isEmpty else { return nil }
        switch trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces) {
        case "ms": return .milliseconds(amount)
        case "s": return .seconds(amount)
        case "min": return .seconds(amount * 60)
        case "h": return .seconds(amount * 3600)
        case "d": return .seconds(amount * 86400)
        default: return nil
        }
    }

    /// The allowed key nearest to `key` by edit distance, when it is close enough to be a typo.
    static func closest(to key: String, in candidates: [String]) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var previous = Array(0...b.count)
            for (i, ca) in a.enumerated() {
                var current = [i + 1]
                for (j, cb) in b.enumerated() {
                    current.append(Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
                }
                previous = current
            }
            return previous[b.count]
        }
        let scored = candidates.map { ($0, distance(Array(key), Array($0))) }.min { $0.1 < $1.1 }
        guard let (best, score) = scored, score <= Swift.max(2, key.count / 3) else { return nil }
        return best
    }
}

extension SettingsMapping {
    /// A list of mappings (e.g. policy rules), each checked against `allowedKeys`;
    /// an empty list when absent.
    public func mappings(_ key: String, allowedKeys: [String]) throws -> [SettingsMapping] {
        guard let found = entryNode(key) else { return [] }
        guard case .sequence(let sequence) = found else {
            throw ConfigurationError(
                .invalidValue, file: file, line: found.mark?.line, column: found.mark?.column, reason: "\(path.isEmpty ? key : "\(path).\(key)") must be a list")
        }
        return try sequence.enumerated().map { index, item in
            try SettingsMapping(node: item, file: file, path: "\(path.isEmpty ? key : "\(path).\(key)")[\(index)]", allowedKeys: allowedKeys)
        }
    }
}
