public import Cryptography
public import Foundation
import HummingbirdOTP
public import Store

/// The console's own key, which seals the TOTP seeds in the database (AES-256-GCM,
/// bound to the account's id). Only osmose-console holds it (a systemd credential).
public struct ConsoleKey: Sendable {
    let key: SecretBytes

    /// The key from 32 bytes.
    /// - Throws: ``StaffError`` `.invalidField` when it is not 32 bytes.
    public init(_ key: SecretBytes) throws {
        guard key.count == 32 else { throw StaffError(.invalidField, "the console key must be 32 bytes (head -c 32 /dev/urandom), not \(key.count)") }
        self.key = key
    }

    func seal(_ seed: String, for staffID: UUID) throws -> [UInt8] {
        let nonce = try SecureRandom.bytes(count: 12)
        let box = try AEAD.aes256GCM.seal(Array(seed.utf8), key: key, nonce: nonce, authenticating: Self.associatedData(staffID))
        return nonce + box.ciphertext + box.tag
    }

    func open(_ sealed: [UInt8], for staffID: UUID) throws -> String {
        guard sealed.count > 28 else { throw StaffError(.sealedSeed, "a stored TOTP seed is truncated") }
        let box = SealedBox(ciphertext: Array(sealed[12..<(sealed.count - 16)]), tag: Array(sealed.suffix(16)))
        do {
            let plain = try AEAD.aes256GCM.open(box, key: key, nonce: sealed.prefix(12), authenticating: Self.associatedData(staffID))
            return String(decoding: plain, as: UTF8.self)
        } catch {
            throw StaffError(.sealedSeed, "a stored TOTP seed cannot be opened with this console key")
        }
    }

    static func associatedData(_ staffID: UUID) -> [UInt8] { Array("console.staff.totp_seed:\(staffID.uuidString.lowercased())".utf8) }
}

/// An enrolment under way: what the authenticator app needs, shown once as a QR code and as text.
public struct Enrolment: Sendable, Hashable {
    /// The `otpauth://totp/…` URL the QR code carries.
    public let authenticatorURL: String
    /// The shared secret in base32, for typing into an app by hand.
    public let base32Secret: String
}

/// The TOTP second factor (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, through
/// hummingbird-auth's `HummingbirdOTP`) and the single-use recovery codes.
public struct SecondFactor: Sendable {
    /// Seals and opens the seeds.
    public let key: ConsoleKey
    /// The issuer shown in authenticator apps.
    public let issuer: String
    /// The clock, in seconds since the Unix epoch (tests move it).
    let now: @Sendable () -> Date

    /// The second factor with the console's key.
    public init(key: ConsoleKey, issuer: String = "Osmose", now: @escaping @Sendable () -> Date = { Date() }) {
        self.key = key
        self.issuer = issuer
        self.now = now
    }

    /// How many recovery codes an enrolment gives.
    public static let recoveryCodeCount = 10
    /// Codes of one step before or after the current one are accepted (clock drift).
    static let window: Int64 = 1
    static let step: Int64 = 30

    /// The enrolment of `principal`: a pending seed (the same one again if the page is
    /// reloaded before it is confirmed).
    /// - Throws: ``StaffError`` `.enrolmentState` when the account already has a second factor.
    public func begin(for principal: StaffPrincipal, on connection: isolated Connection) throws -> Enrolment {
        let row = try connection.query("SELECT totp_seed IS NOT NULL AS enrolled, totp_pending_seed FROM console.staff WHERE id = $1", [principal.id]).rows[0]
        guard try !row.bool("enrolled") else { throw StaffError(.enrolmentState, "this account already has a second factor") }
        let seed: String
        if let pending = try row.optionalBytes("totp_pending_seed") {
            seed = try key.open(pending, for: principal.id)
        } else {
            seed = try Self.newSeed()
            try connection.query("UPDATE console.staff SET totp_pending_seed = $2 WHERE id = $1", [principal.id, try key.seal(seed, for: principal.id)])
        }
        let totp = TOTP(secret: seed)
        let url = totp.createAuthenticatorURL(label: "\(issuer):\(principal.username)", issuer: issuer)
        return Enrolment(authenticatorURL: url, base32Secret: Self.base32(Array(seed.utf8)))
    }

    /// Confirms the enrolment with a code from the app: the pending seed becomes the
    /// account's, and fresh recovery codes are made.
    /// - Returns: the recovery codes, shown once (only their hashes are kept).
    /// - Throws: ``StaffError`` `.invalidSecondFactor` for a wrong code; `.enrolmentState` without a pending seed.
    public func confirm(for principal: StaffPrincipal, code: String, on connection: isolated Connection) throws -> [String] {
        let row = try connection.query("SELECT totp_seed IS NOT NULL AS enrolled, totp_pending_seed FROM console.staff WHERE id = $1 FOR UPDATE", [principal.id]).rows[0]
        guard try !row.bool("enrolled"), let pending = try row.optionalBytes("totp_pending_seed") else {
            throw StaffError(.enrolmentState, "no enrolment is under way for this account")
        }
        guard let step = matchingStep(code, seed: try key.open(pending, for: principal.id), after: 0) else {
            throw StaffError(.invalidSecondFactor, "the code is wrong")
        }
        try connection.query(
            "UPDATE console.staff SET totp_seed = totp_pending_seed, totp_pending_seed = NULL, totp_enrolled_at = clock_timestamp(), totp_last_step = $2 WHERE id = $1",
            [principal.id, step])
        return try replaceRecoveryCodes(for: principal, on: connection)
    }

    /// Checks a TOTP code, or a recovery code (which is then used up). A TOTP code is
    /// accepted once: a code replayed within its 30 seconds is refused.
    /// - Throws: ``StaffError`` `.invalidSecondFactor`.
    public func verify(for principal: StaffPrincipal, code: String, on connection: isolated Connection) throws {
        let trimmed = code.filter { !$0.isWhitespace }
        if trimmed.count == 6, trimmed.allSatisfy(\.isASCII), trimmed.allSatisfy(\.isNumber) {
            let row = try connection.query("SELECT totp_seed, totp_last_step FROM console.staff WHERE id = $1 FOR UPDATE", [principal.id]).rows[0]
            guard let sealed = try row.optionalBytes("totp_seed") else { throw StaffError(.enrolmentState, "this account has no second factor yet") }
            guard let step = matchingStep(trimmed, seed: try key.open(sealed, for: principal.id), after: try row.int64("totp_last_step")) else {
                throw StaffError(.invalidSecondFactor, "the code is wrong or was already used")
            }
            try connection.query("UPDATE console.staff SET totp_last_step = $2 WHERE id = $1", [principal.id, step])
            return
        }
        let used = try connection.query(
            "UPDATE console.recovery_codes SET used_at = clock_timestamp() WHERE staff_id = $1 AND code_hash = $2 AND used_at IS NULL",
            [principal.id, Self.recoveryHash(trimmed)]
        ).affectedRows
        guard used == 1 else { throw StaffError(.invalidSecondFactor, "the code is wrong or was already used") }
    }

    /// How many unused recovery codes the account has.
    public func remainingRecoveryCodes(for principal: StaffPrincipal, on connection: isolated Connection) throws -> Int {
        try connection.query("SELECT count(*) AS n FROM console.recovery_codes WHERE staff_id = $1 AND used_at IS NULL", [principal.id]).rows[0].int("n")
    }

    /// Replaces the account's recovery codes with new ones.
    /// - Returns: the codes, shown once.
    public func replaceRecoveryCodes(for principal: StaffPrincipal, on connection: isolated Connection) throws -> [String] {
        try connection.query("DELETE FROM console.recovery_codes WHERE staff_id = $1", [principal.id])
        var codes: [String] = []
        for _ in 0..<Self.recoveryCodeCount {
            let code = try Self.newRecoveryCode()
            try connection.query("INSERT INTO console.recovery_codes (staff_id, code_hash) VALUES ($1, $2)", [principal.id, Self.recoveryHash(code)])
            codes.append(code)
        }
        return codes
    }

    /// The time step whose code is `code`, among the steps around now newer than `after`.
    func matchingStep(_ code: String, seed: String, after lastStep: Int64) -> Int64? {
        guard code.count == 6, let value = Int(code) else { return nil }
        let current = Int64(now().timeIntervalSince1970) / Self.step
        let totp = TOTP(secret: seed)
        var found: Int64?
        for step in (current - Self.window)...(current + Self.window) where step > lastStep {
            // Every candidate step is computed, so the time taken says nothing about which matched.
            if totp.compute(date: Date(timeIntervalSince1970: TimeInterval(step * Self.step))) == value, found == nil { found = step }
        }
        return found
    }

    /// A seed of 32 characters of the base32 alphabet (160 random bits); its UTF-8
    /// bytes are the HMAC key, as HummingbirdOTP uses a secret.
    static func newSeed() throws -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        return String(try SecureRandom.bytes(count: 32).map { alphabet[Int($0 & 31)] })
    }

    /// A recovery code: 20 characters of the base32 alphabet (100 bits) in groups of five.
    static func newRecoveryCode() throws -> String {
        let alphabet = Array("ABCDEFGHJKMNPQRSTUVWXYZ23456789")
        let letters = try SecureRandom.bytes(count: 40).filter { Int($0) < 248 }.prefix(20).map { alphabet[Int($0) % 31] }
        guard letters.count == 20 else { return try newRecoveryCode() }
        return stride(from: 0, to: 20, by: 5).map { String(letters[$0..<$0 + 5]) }.joined(separator: "-")
    }

    static func recoveryHash(_ code: String) -> [UInt8] {
        SHA256.hash(Array(code.uppercased().filter { $0 != "-" && !$0.isWhitespace }.utf8))
    }

    /// RFC 4648 base32 without padding, as authenticator apps take a secret.
    static func base32(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var output = ""
        var buffer = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | Int(byte)
            bits += 8
            while bits >= 5 {
                output.append(alphabet[(buffer >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        if bits > 0 { output.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return output
    }
}
