public import Store

extension JournalEntry {
    /// Where each canonical field lies in a taken intake row (``JournalDatabase/takeBatch(on:state:limit:now:above:)``'s
    /// `RETURNING` list) and how it is encoded, in canonical order: derived once from
    /// ``IntakeColumn``, so that making an entry from a row looks nothing up.
    static let intakeFields: [IntakeField] = CanonicalScan.Field.allCases.map { field in
        let column = CanonicalScan.Field.columns[field.rawValue]
        let kind: IntakeFieldKind = column.kind == .uuid ? .uuid : column.isRequired ? .required : .optional
        return IntakeField(position: column.takenPosition, kind: kind)
    }

    /// A canonical field's place in a taken intake row.
    struct IntakeField {
        /// Its position in the row.
        let position: Int
        /// How it is encoded.
        let kind: IntakeFieldKind
    }

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
        for intakeField in intakeFields {
            let field = row.field(intakeField.position)
            length += 2 + (intakeField.kind == .uuid ? (field == nil ? 0 : 36) : (field?.count ?? 0))
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length)
        bytes.append(formatVersion)
        appendInteger(sequence, to: &bytes)
        appendInteger(UInt64(bitPattern: occurredAt), to: &bytes)
        appendInteger(UInt64(bitPattern: sequencedAt), to: &bytes)
        for intakeField in intakeFields {
            let index = intakeField.position
            guard let field = row.field(index) else {
                if intakeField.kind == .required { appendField([], to: &bytes) } else { appendAbsentField(to: &bytes) }
                continue
            }
            switch intakeField.kind {
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
