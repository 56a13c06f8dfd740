import Foundation

/// age's ASCII armor: strict PEM (RFC 7468 §3, figure 3) with the label
/// `AGE ENCRYPTED FILE`, padded base64 in lines of 64 columns (the last one
/// shorter or equal), LF or CRLF line ends, whitespace allowed only before the
/// first line and after the last.
public enum AgeArmor {
    static let begin = Array("-----BEGIN AGE ENCRYPTED FILE-----".utf8)
    static let end = Array("-----END AGE ENCRYPTED FILE-----".utf8)

    private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0a || byte == 0x0d }

    /// True when `file` (after leading whitespace) starts like a PEM block.
    public static func isArmored(_ file: [UInt8]) -> Bool {
        guard let first = file.firstIndex(where: { !isSpace($0) }) else { return false }
        return file[first...].starts(with: Array("-----BEGIN".utf8))
    }

    /// The binary age file inside the armor.
    /// - Throws: ``AgeError`` `.armor` naming what is not strict PEM.
    public static func decode(_ file: [UInt8]) throws -> [UInt8] {
        guard let first = file.firstIndex(where: { !isSpace($0) }), let last = file.lastIndex(where: { !isSpace($0) }) else {
            throw AgeError(.armor, "the armored file is empty")
        }
        // The block itself; a line end after the END line belongs to the trailing whitespace.
        let block = file[first...last]
        var lines: [ArraySlice<UInt8>] = []
        var start = block.startIndex
        while start <= block.endIndex {
            let newline = block[start...].firstIndex(of: 0x0a) ?? block.endIndex
            var line = block[start..<newline]
            if line.last == 0x0d { line = line.dropLast() }
            lines.append(line)
            start = newline + 1
            if newline == block.endIndex { break }
        }
        guard lines.count >= 2, lines.first!.elementsEqual(begin) else { throw AgeError(.armor, "the first line is not -----BEGIN AGE ENCRYPTED FILE-----") }
        guard lines.last!.elementsEqual(end) else { throw AgeError(.armor, "the last line is not -----END AGE ENCRYPTED FILE-----") }
        let body = lines.dropFirst().dropLast()
        for (index, line) in body.enumerated() {
            let isLast = index == body.count - 1
            guard !line.isEmpty else { throw AgeError(.armor, "an empty line inside the armor") }
            guard isLast ? line.count <= 64 : line.count == 64 else {
                throw AgeError(.armor, "armor line \(index + 2) must be 64 columns (the last one at most 64)")
            }
            let isBase64: (UInt8) -> Bool = {
                ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2b || $0 == 0x2f || $0 == 0x3d
            }
            guard line.allSatisfy(isBase64) else { throw AgeError(.armor, "armor line \(index + 2) holds a character outside base64") }
            guard isLast || !line.contains(0x3d) else { throw AgeError(.armor, "base64 padding before the last armor line") }
        }
        let text = body.reduce(into: [UInt8]()) { $0 += $1 }
        guard text.count % 4 == 0, let padding = text.firstIndex(of: 0x3d).map({ text.count - $0 }) ?? Optional(0), padding <= 2,
            text.suffix(padding).allSatisfy({ $0 == 0x3d }),
            let data = Data(base64Encoded: Data(text))
        else {
            throw AgeError(.armor, "the armored base64 is not correctly padded")
        }
        // Canonical: re-encoding gives the same characters.
        guard Array(data.base64EncodedData()) == text else { throw AgeError(.armor, "the armored base64 is not canonical") }
        return Array(data)
    }

    /// Armors a binary age file.
    public static func encode(_ file: [UInt8]) -> [UInt8] {
        let text = Array(Data(file).base64EncodedData())
        var output = begin + [0x0a]
        var offset = 0
        while offset < text.count {
            let next = min(offset + 64, text.count)
            output += text[offset..<next] + [0x0a]
            offset = next
        }
        return output + end + [0x0a]
    }
}
