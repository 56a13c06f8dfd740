/// The strict reading of a JSON document (RFC 8259) that every input of the suite
/// passes before it is decoded: the care API's request bodies and the intake
/// socket's frames. Foundation's parsers accept what these inputs must refuse: a
/// key given twice (one of the two values silently wins, so two readers of the
/// same bytes can disagree), a byte-order mark, a NUL inside a string (which
/// PostgreSQL's `text` cannot hold), an unpaired surrogate escape.
///
/// ``check(_:)`` only validates; the caller then decodes the same bytes as usual.
public enum StrictJSON {
    /// Objects and arrays nest at most this deep.
    public static let maximumDepth = 64

    /// Why a document is refused. Descriptions name the field (as a dotted path,
    /// array items by index), never a value.
    public enum Problem: Error, Sendable, Hashable, CustomStringConvertible {
        /// The document starts with a UTF-8 byte-order mark.
        case byteOrderMark
        /// The document is not valid UTF-8.
        case notUTF8
        /// The document is not JSON: what was expected, at which byte.
        case malformed(String, offset: Int)
        /// An object names this field twice.
        case duplicateField(String)
        /// A string (a value or a key) of this field holds a NUL character.
        case nul(String)
        /// Objects and arrays nest deeper than ``maximumDepth``.
        case tooDeep

        public var description: String {
            switch self {
            case .byteOrderMark: "the document starts with a byte-order mark; send UTF-8 without one"
            case .notUTF8: "the document is not UTF-8"
            case .malformed(let expected, let offset): "the document is not valid JSON: \(expected) at byte \(offset)"
            case .duplicateField(let path): "field \(path) is given more than once"
            case .nul(let path): "field \(path) contains a NUL character"
            case .tooDeep: "the document nests deeper than \(StrictJSON.maximumDepth) levels"
            }
        }
    }

    /// Checks `bytes`.
    /// - Throws: the first ``Problem`` found.
    public static func check(_ bytes: [UInt8]) throws(Problem) {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { throw .byteOrderMark }
        guard String(validating: bytes, as: UTF8.self) != nil else { throw .notUTF8 }
        var reader = Reader(bytes: bytes)
        reader.skipSpace()
        try reader.value(path: "", depth: 0)
        reader.skipSpace()
        guard reader.position == bytes.count else { throw .malformed("end of document", offset: reader.position) }
    }

    private struct Reader {
        let bytes: [UInt8]
        var position = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        var current: UInt8? { position < bytes.count ? bytes[position] : nil }

        mutating func skipSpace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { position += 1 }
        }

        mutating func expect(_ byte: UInt8, _ what: String) throws(Problem) {
            guard current == byte else { throw .malformed(what, offset: position) }
            position += 1
        }

        mutating func value(path: String, depth: Int) throws(Problem) {
            guard let byte = current else { throw .malformed("a value", offset: position) }
            switch byte {
            case UInt8(ascii: "{"): try object(path: path, depth: depth + 1)
            case UInt8(ascii: "["): try array(path: path, depth: depth + 1)
            case UInt8(ascii: "\""):
                if try string() { throw .nul(Self.shown(path)) }
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
            default: throw .malformed("a value", offset: position)
            }
        }

        mutating func object(path: String, depth: Int) throws(Problem) {
            guard depth <= StrictJSON.maximumDepth else { throw .tooDeep }
            position += 1
            skipSpace()
            if current == UInt8(ascii: "}") {
                position += 1
                return
            }
            var seen = Set<[UInt8]>()
            while true {
                guard current == UInt8(ascii: "\"") else { throw .malformed("a field name", offset: position) }
                let start = position
                let hasNul = try string()
                let key = decodedKey(bytes[(start + 1)..<(position - 1)])
                let keyText = String(decoding: key, as: UTF8.self)
                let fieldPath = path.isEmpty ? keyText : "\(path).\(keyText)"
                if hasNul { throw .nul(Self.shown(fieldPath)) }
                guard seen.insert(key).inserted else { throw .duplicateField(Self.shown(fieldPath)) }
                skipSpace()
                try expect(UInt8(ascii: ":"), "':' after a field name")
                skipSpace()
                try value(path: fieldPath, depth: depth)
                skipSpace()
                guard let separator = current else { throw .malformed("',' or '}'", offset: position) }
                position += 1
                if separator == UInt8(ascii: "}") { return }
                guard separator == UInt8(ascii: ",") else { throw .malformed("',' or '}'", offset: position - 1) }
                skipSpace()
            }
        }

        mutating func array(path: String, depth: Int) throws(Problem) {
            guard depth <= StrictJSON.maximumDepth else { throw .tooDeep }
            position += 1
            skipSpace()
            if current == UInt8(ascii: "]") {
                position += 1
                return
            }
            var index = 0
            while true {
                try value(path: path.isEmpty ? "\(index)" : "\(path).\(index)", depth: depth)
                index += 1
                skipSpace()
                guard let separator = current else { throw .malformed("',' or ']'", offset: position) }
                position += 1
                if separator == UInt8(ascii: "]") { return }
                guard separator == UInt8(ascii: ",") else { throw .malformed("',' or ']'", offset: position - 1) }
                skipSpace()
            }
        }

        /// Reads a string; returns true when it holds a NUL (escaped: raw control
        /// characters are not JSON and are refused as malformed).
        mutating func string() throws(Problem) -> Bool {
            position += 1
            var hasNul = false
            while true {
                guard let byte = current else { throw .malformed("the end of a string", offset: position) }
                position += 1
                switch byte {
                case UInt8(ascii: "\""): return hasNul
                case 0x00..<0x20: throw .malformed("no control character inside a string", offset: position - 1)
                case UInt8(ascii: "\\"):
                    guard let escaped = current else { throw .malformed("an escape", offset: position) }
                    position += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
                        UInt8(ascii: "r"), UInt8(ascii: "t"):
                        continue
                    case UInt8(ascii: "u"):
                        let unit = try hexUnit()
                        if unit == 0 { hasNul = true }
                        if (0xD800...0xDBFF).contains(unit) {
                            guard current == UInt8(ascii: "\\"), position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "u") else {
                                throw .malformed("the low half of a surrogate pair", offset: position)
                            }
                            position += 2
                            guard (0xDC00...0xDFFF).contains(try hexUnit()) else { throw .malformed("the low half of a surrogate pair", offset: position - 4) }
                        } else if (0xDC00...0xDFFF).contains(unit) {
                            throw .malformed("no unpaired low surrogate", offset: position - 6)
                        }
                    default: throw .malformed("a valid escape", offset: position - 1)
                    }
                default: continue
                }
            }
        }

        mutating func hexUnit() throws(Problem) -> UInt16 {
            guard position + 4 <= bytes.count else { throw .malformed("four hexadecimal digits", offset: position) }
            var unit: UInt16 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw .malformed("four hexadecimal digits", offset: position)
                }
                unit = unit << 4 | UInt16(digit)
                position += 1
            }
            return unit
        }

        mutating func literal(_ word: StaticString) throws(Problem) {
            let expected = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
            guard position + expected.count <= bytes.count, bytes[position..<(position + expected.count)].elementsEqual(expected) else {
                throw .malformed("a value", offset: position)
            }
            position += expected.count
        }

        mutating func number() throws(Problem) {
            if current == UInt8(ascii: "-") { position += 1 }
            guard let first = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { throw .malformed("a digit", offset: position) }
            position += 1
            if first != UInt8(ascii: "0") { skipDigits() }
            if current == UInt8(ascii: ".") {
                position += 1
                guard digitsFollow() else { throw .malformed("a digit after '.'", offset: position) }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                position += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
                guard digitsFollow() else { throw .malformed("a digit in the exponent", offset: position) }
            }
        }

        mutating func digitsFollow() -> Bool {
            guard let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return false }
            skipDigits()
            return true
        }

        mutating func skipDigits() {
            while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { position += 1 }
        }

        /// A key's text with its escapes resolved, so that `"a"` and `"\u0061"` are the same field.
        func decodedKey(_ raw: ArraySlice<UInt8>) -> [UInt8] {
            guard raw.contains(UInt8(ascii: "\\")) else { return Array(raw) }
            var scalars = String.UnicodeScalarView()
            var index = raw.startIndex
            var pendingHigh: UInt16?
            while index < raw.endIndex {
                let byte = raw[index]
                if byte != UInt8(ascii: "\\") {
                    // Copy one whole UTF-8 sequence.
                    let length = byte < 0x80 ? 1 : byte < 0xE0 ? 2 : byte < 0xF0 ? 3 : 4
                    let sequence = raw[index..<min(raw.endIndex, index + length)]
                    scalars.append(contentsOf: String(decoding: sequence, as: UTF8.self).unicodeScalars)
                    index += length
                    continue
                }
                let escaped = raw[index + 1]
                index += 2
                switch escaped {
                case UInt8(ascii: "b"): scalars.append("\u{8}")
                case UInt8(ascii: "f"): scalars.append("\u{C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    let unit = UInt16(String(decoding: raw[index..<(index + 4)], as: UTF8.self), radix: 16) ?? 0
                    index += 4
                    if let high = pendingHigh {
                        pendingHigh = nil
                        let value = 0x10000 + (UInt32(high - 0xD800) << 10) + UInt32(unit - 0xDC00)
                        if let scalar = Unicode.Scalar(value) { scalars.append(scalar) }
                    } else if (0xD800...0xDBFF).contains(unit) {
                        pendingHigh = unit
                    } else if let scalar = Unicode.Scalar(UInt32(unit)) {
                        scalars.append(scalar)
                    }
                default: scalars.append(Unicode.Scalar(escaped))
                }
            }
            return Array(String(scalars).utf8)
        }

        /// A path as an error shows it: bounded, and with what cannot be shown replaced.
        static func shown(_ path: String) -> String {
            JournalText.bounded(path, to: 80)
        }
    }
}
