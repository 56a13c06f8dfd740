import Foundation
import Glibc
import TestSupport

/// An HTTP/1.1 client over a plain TCP socket, for what URLSession will not send:
/// malformed requests, any bytes in a header, pipelined requests, and a chosen
/// source address on loopback (127.0.0.2 is another client than 127.0.0.1).
/// Blocking, so it runs off the cooperative pool.
enum RawHTTP {
    /// One response.
    struct Reply: Sendable {
        let status: Int
        /// Header fields, names lower-cased.
        let headers: [String: String]
        let body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
        var requestID: String? { headers["osmose-request-id"] }
        var object: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
        var errorCode: String? { (object["error"] as? [String: Any])?["code"] as? String }
    }

    /// The bytes of a request (keep-alive: the reader stops once it has the replies it expects).
    static func request(_ method: String, _ target: String, headers: [(String, [UInt8])] = [], body: [UInt8]? = nil) -> [UInt8] {
        var bytes = Array("\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n".utf8)
        for (name, value) in headers { bytes += Array("\(name): ".utf8) + value + Array("\r\n".utf8) }
        if let body { bytes += Array("Content-Length: \(body.count)\r\n".utf8) }
        bytes += Array("\r\n".utf8)
        if let body { bytes += body }
        return bytes
    }

    /// Sends `bytes` to 127.0.0.1:`port` from `source`, then reads responses until
    /// `expected` are complete, or else until the server closes the connection
    /// (`headOnly` for an answer to HEAD, which has no body).
    static func exchange(_ bytes: [UInt8], port: Int, from source: String = "127.0.0.1", expected: Int? = nil, headOnly: Bool = false) async throws -> [Reply] {
        try await offThePool { try exchangeBlocking(bytes, port: port, source: source, expected: expected, headOnly: headOnly) }
    }

    /// ``exchange(_:port:from:expected:headOnly:)`` for one request and its response.
    static func send(_ bytes: [UInt8], port: Int, from source: String = "127.0.0.1", headOnly: Bool = false) async throws -> Reply {
        let replies = try await exchange(bytes, port: port, from: source, expected: 1, headOnly: headOnly)
        guard let reply = replies.first else { throw TestEnvironmentError("no response") }
        return reply
    }

    private static func exchangeBlocking(_ bytes: [UInt8], port: Int, source: String, expected: Int?, headOnly: Bool) throws -> [Reply] {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestEnvironmentError("socket() failed") }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { throw TestEnvironmentError("cannot bind \(source)") }
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        remote.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestEnvironmentError("cannot connect to port \(port)") }
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { break }  // the server may close early (a refused oversized body): read what it answered
            sent += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            if let expected, let replies = try? parse(received, headOnly: headOnly, complete: true), replies.count >= expected { return replies }
            let n = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        return try parse(received, headOnly: headOnly, complete: false)
    }

    /// The responses in `bytes`; with `complete`, only whole ones (a head and its whole body).
    private static func parse(_ bytes: [UInt8], headOnly: Bool, complete: Bool) throws -> [Reply] {
        var replies: [Reply] = []
        var rest = bytes[...]
        while !rest.isEmpty {
            guard let end = rest.firstRange(of: Array("\r\n\r\n".utf8)) else {
                if complete { break }
                throw TestEnvironmentError("a response without the end of its head")
            }
            let head = String(decoding: rest[rest.startIndex..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
            let statusParts = head[0].split(separator: " ")
            guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw TestEnvironmentError("bad status line \(head[0])") }
            var headers: [String: String] = [:]
            for line in head.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            if headOnly {
                replies.append(Reply(status: status, headers: headers, body: Data()))
                return replies
            }
            let declared = Int(headers["content-length"] ?? "")
            if complete && (declared == nil || end.upperBound + declared! > rest.endIndex) { break }
            let bodyEnd = min(rest.endIndex, end.upperBound + (declared ?? (rest.endIndex - end.upperBound)))
            replies.append(Reply(status: status, headers: headers, body: Data(rest[end.upperBound..<bodyEnd])))
            rest = rest[bodyEnd...]
        }
        return replies
    }
}
