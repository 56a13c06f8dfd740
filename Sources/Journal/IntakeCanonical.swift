public import Store

extension JournalEntry {
    /// The intake columns a batch takes, in this order (``JournalDatabase/takeBatch(on:state:limit:now:above:)``'s
    /// `RETURNING` list): 0 id, 1 occurred_at, then the canonical fields 2…16 in canonical order.
    static let intakeFieldKinds: [IntakeFieldKind] = [
        .required, .required, .uuid, .optional, .optional, .optional, .required, .required, .optional, .uuid, .optional, .required,
        .optional, .optional, .optional,
    ]

    /// How an intake column becomes a canonical field.
    enum IntakeFieldKind {
        /// Text; NULL never happens (NOT NULL), and would be encoded as an empty string, as the decoded entry does.
        case required
        /// Text or absent.
        case optional
        /// A binary uuid, written as lowercase hyphenated text, or absent.
        case uuid
    }

    /// The canonical bytes of the entry that intake `row` becomes at `sequence`, written
    /// straight from the row's binary fields: byte for byte what decoding the row into a
    /// ``JournalEntry`` and taking ``canonicalBytes`` gives (a test holds them equal),
    /// without the fifteen strings in between, which were most of the daemon's own work a
    /// batch.
    /// - Throws: ``EntryFormatError`` for a text column that is not UTF-8 or a uuid column
    ///   that is not 16 bytes.
    public static func canonicalBytes(intakeRow row: BinaryCopyDecoder.Row, sequence: UInt64, occurredAt: Int64, sequencedAt: Int64) throws -> [UInt8] {
        var length = 25
        for (offset, kind) in intakeFieldKinds.enumerated() {
            let field = row.field(2 + offset)
            length += 2 + (kind == .uuid ? (field == nil ? 0 : 36) : (field?.count ?? 0))
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length)
        bytes.append(formatVersion)
        appendInteger(sequence, to: &bytes)
        appendInteger(UInt64(bitPattern: occurredAt), to: &bytes)
        appendInteger(UInt64(bitPattern: sequencedAt), to: &bytes)
        for (offset, kind) in intakeFieldKinds.enumerated() {
            let index = 2 + offset
            guard let field = row.field(index) else {
                if kind == .required { appendField([], to: &bytes) } else { appendAbsentField(to: &bytes) }
                continue
            }
            switch kind {
            case .uuid:
                guard field.count == 16 else { throw EntryFormatError("intake column \(index) is not a uuid") }
                bytes.append(0)
                bytes.append(36)
                BinaryCopyDecoder.appendUUIDText(field, to: &bytes)
            case .required, .optional:
                // Vocabularies, ids and names are ASCII: only other text is validated.
                if field.contains(where: { $0 >= 0x80 }), String(validating: field, as: UTF8.self) == nil {
                    throw EntryFormatError("intake column \(index) is not UTF-8")
                }
                appendField(field, to: &bytes)
            }
        }
        return bytes
    }
}
