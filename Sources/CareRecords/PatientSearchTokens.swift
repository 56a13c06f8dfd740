public import Keyring

/// The blind-index tokens of a patient record, as osmose-care writes them and
/// osmose-keyd rewrites them under a new key.
public enum PatientSearchTokens {
    /// The token of last name + first name + birth date under blind-index key `keyID`.
    public static func name(lastName: String, firstName: String, birthDate: String, index: BlindIndex, keyID: Int) throws -> [UInt8] {
        try index.token(domain: "patient.name-birth", parts: [lastName, firstName, birthDate], keyID: keyID)
    }

    /// The token of an INS under blind-index key `keyID`.
    public static func ins(_ ins: String, index: BlindIndex, keyID: Int) throws -> [UInt8] {
        try index.token(domain: "patient.ins", parts: [ins], keyID: keyID)
    }
}
