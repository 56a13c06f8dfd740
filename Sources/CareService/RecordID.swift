package import CareRecords
package import Foundation

/// The id of the record a path names (`/v1/patients/{id}`, `/v1/transmissions/{id}`):
/// parsed once, when the request arrives, and handed to the handler as a UUID.
/// Any case is accepted; the nil UUID is a well-formed id that names no record.
package struct RecordID: Sendable, Hashable {
    /// The route parameter that carries the id (`:id`).
    static let parameter = "id"

    /// The id.
    package let uuid: UUID

    /// Parses the path's text.
    /// - Throws: ``CareRecords/CareError/Code/invalidField`` when `text` is not a UUID.
    package init(parsing text: String) throws(CareError) {
        guard let uuid = UUID(uuidString: text) else { throw CareError(.invalidField, "the id in the path is not a UUID") }
        self.uuid = uuid
    }

    /// The id in a route's `:id` parameter, or the refusal to answer with once the
    /// request is authenticated and allowed (a malformed id is no reason to skip
    /// the checks that come first).
    static func inPath(_ context: CareRequestContext) -> Result<RecordID, CareError> {
        guard let text = context.parameters.get(parameter) else { return .failure(CareError(.invalidField, "the path names no record")) }
        return Result { () throws(CareError) in try RecordID(parsing: text) }
    }
}
