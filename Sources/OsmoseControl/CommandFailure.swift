import ArgumentParser
import Settings
import Keyring
import Foundation
import Glibc
import Schema
import Store
import Systemd

/// The documented exit statuses of `osmosectl` (see its `--help`).
enum ExitStatus: Int32 {
    case failure = 1
    case invalidConfiguration = 3
    case database = 4
    case integrity = 5
    case masterKey = 6
}

/// Runs a command body, turning the suite's errors into one line on standard error
/// and the documented exit status.
func reportingFailures(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch {
        let (status, hint) = classify(error)
        var line = "osmosectl: \(error)"
        if let hint { line += " — \(hint)" }
        FileHandle.standardError.write(Data((line + "\n").utf8))
        throw ExitCode(status.rawValue)
    }
}

private func classify(_ error: any Error) -> (ExitStatus, String?) {
    switch error {
    case is ConfigurationError:
        return (.invalidConfiguration, nil)
    case let error as StoreError:
        switch error.code {
        case .connectionFailed, .connectionLost:
            return (.database, "check database.connection in the configuration, or pass --database")
        case .invalidArgument:
            return (.invalidConfiguration, nil)
        default:
            return (.database, error.sqlState == "42501" ? "the database role lacks the privilege; run as the schema owner" : nil)
        }
    case let error as SchemaError:
        switch error.code {
        case .migrationModified, .unknownMigration: return (.integrity, nil)
        case .migrationFailed: return (.database, nil)
        default: return (.failure, nil)
        }
    case is SystemdError:
        return (.failure, nil)
    case let error as KeyringError:
        return error.code == .masterKeyUnavailable || error.code == .wrongMasterKey ? (.masterKey, nil) : (.failure, nil)
    default:
        return (.failure, nil)
    }
}
