import Dispatch
import Foundation
import Journal
public import Logging
public import ServiceLifecycle
public import Store

/// The local intake socket: other programs on the host submit access events in
/// the framed JSON protocol of ``IntakeProtocol``. The peer is identified by its
/// uid (SO_PEERCRED) against an allow-list that also fixes the event's `source`;
/// the reply is sent once the event is committed to `journal.intake`. Bad input
/// gets an error reply and never stops the server.
///
/// Blocking socket I/O runs on dedicated threads (one accept thread, one thread per
/// client, at most `maximumClients`), never on the cooperative pool. One program
/// cannot hold every slot: each peer uid has at most `maximumClientsPerPeer`. A
/// frame, from the moment the server waits for it to its last byte, must arrive
/// within `frameDeadline`: a client that trickles bytes is cut off as one that
/// sends nothing.
public final class IntakeSocketServer: Service, Sendable {
    private let listener: Int32
    private let peers: [UInt32: String]
    private let maximumFrameBytes: Int
    private let maximumClients: Int
    private let maximumClientsPerPeer: Int
    private let frameDeadline: Duration
    private let pool: ConnectionPool
    private let logger: Logger
    private let clients = Locked(ClientSlots())
    private let stopping = Locked(false)

    /// The clients being served, in all and per peer uid.
    private struct ClientSlots {
        var total = 0
        var perPeer: [UInt32: Int] = [:]
    }

    /// A server on an already listening Unix stream socket.
    /// - Parameters:
    ///   - listeningDescriptor: the socket, bound and listening.
    ///   - peers: the uids allowed to submit, each with the `source` its events are recorded under.
    ///   - maximumFrameBytes: the largest frame body accepted.
    ///   - maximumClients: clients served at once.
    ///   - maximumClientsPerPeer: clients of one uid served at once; a quarter of `maximumClients` (at least one) unless given.
    ///   - frameDeadline: how long a whole frame may take to arrive, waiting included.
    ///   - pool: the connections events are inserted with.
    ///   - logger: where refusals and failures are logged.
    public init(
        listeningDescriptor: Int32, peers: [UInt32: String], maximumFrameBytes: Int, maximumClients: Int = 32, maximumClientsPerPeer: Int? = nil,
        frameDeadline: Duration = .seconds(30), pool: ConnectionPool, logger: Logger
    ) {
        self.listener = listeningDescriptor
        self.peers = peers
        self.maximumFrameBytes = maximumFrameBytes
        self.maximumClients = maximumClients
        self.maximumClientsPerPeer = maximumClientsPerPeer ?? max(1, maximumClients / 4)
        self.frameDeadline = frameDeadline
        self.pool = pool
        self.logger = logger
    }

    /// Binds and listens on `path` (for development, when not socket-activated);
    /// replaces a stale socket file but never another kind of file.
    public static func listen(path: String) throws -> Int32 {
        var status = stat()
        if lstat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFSOCK else { throw JournalError(.invalidArgument, "\(path) exists and is not a socket") }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw JournalError(.invalidArgument, "socket(): \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw JournalError(.invalidArgument, "socket path too long") }
        // Memory: `bytes.count < sizeof(sun_path)` was checked above, so the path and its
        // NUL fit inside `sun_path`; the rebound pointer lives only for the bind() call.
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 64) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw JournalError(.invalidArgument, "cannot listen on \(path): \(reason)")
        }
        chmod(path, 0o660)
        return fd
    }

    /// Threads and ownership: one accept thread, and one thread per admitted client that
    /// alone reads, writes and finally closes that client's descriptor (never shared).
    /// Threads share only `clients` and `stopping`, both `Locked` (pthread); each event is
    /// handed to the async pool through ``waitFor(_:)``, which blocks only that client's
    /// own thread, never a thread of the cooperative pool.
    public func run() async throws {
        let acceptThread = Thread { [self] in acceptLoop() }
        acceptThread.name = "intake-accept"
        acceptThread.start()
        try? await gracefulShutdown()
        stopping.withLock { $0 = true }
        // Let in-flight inserts finish; a client merely waiting to send is dropped after 5 s.
        let deadline = ContinuousClock.now + .seconds(5)
        while clients.withLock({ $0.total }) > 0, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
    }

    private func acceptLoop() {
        while !stopping.withLock({ $0 }) {
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 250) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            // A peer whose credentials cannot be read shares one slot count (and is refused in serve).
            let uid = Self.peerUID(client) ?? UInt32.max
            let admitted = clients.withLock { slots -> Bool in
                guard slots.total < maximumClients, slots.perPeer[uid, default: 0] < maximumClientsPerPeer else { return false }
                slots.total += 1
                slots.perPeer[uid, default: 0] += 1
                return true
            }
            guard admitted else {
                send(client, IntakeProtocol.reply(.init("busy", "too many clients (of this user, or in all); retry shortly", closesConnection: true)))
                close(client)
                continue
            }
            let thread = Thread { [self] in
                serve(client, uid: uid)
                close(client)
                clients.withLock { slots in
                    slots.total -= 1
                    slots.perPeer[uid, default: 1] -= 1
                    if slots.perPeer[uid] == 0 { slots.perPeer[uid] = nil }
                }
            }
            thread.name = "intake-client"
            thread.start()
        }
    }

    /// Serves one client until it closes, sends a frame that loses the framing, or misses a frame's deadline.
    private func serve(_ client: Int32, uid: UInt32) {
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard let source = peers[uid] else {
            logger.warning("intake socket: peer refused", metadata: ["osmose.journal.peer_uid": "\(uid == UInt32.max ? "?" : String(uid))"])
            send(client, IntakeProtocol.reply(.init("peer_not_allowed", "this user may not submit events; see journal.socket_peers", closesConnection: true)))
            return
        }
        let seconds = frameDeadline.components.seconds
        while !stopping.withLock({ $0 }) {
            let deadline = ContinuousClock.now + frameDeadline
            let header: [UInt8]
            switch readExactly(client, 4, before: deadline) {
            case .complete(let bytes): header = bytes
            case .closed(let received):
                if received > 0 { send(client, IntakeProtocol.reply(.init("truncated_frame", "the connection closed inside a frame header", closesConnection: true))) }
                return
            case .deadlinePassed:
                send(client, IntakeProtocol.reply(.init("timeout", "no complete frame within \(seconds) s", closesConnection: true)))
                return
            case .stopping:
                return
            }
            let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
            guard length > 0, length <= maximumFrameBytes else {
                send(client, IntakeProtocol.reply(.init("frame_size", "a frame is 1 to \(maximumFrameBytes) bytes, this one says \(length)", closesConnection: true)))
                return
            }
            let body: [UInt8]
            switch readExactly(client, length, before: deadline) {
            case .complete(let bytes): body = bytes
            case .closed:
                send(client, IntakeProtocol.reply(.init("truncated_frame", "the connection closed inside a frame", closesConnection: true)))
                return
            case .deadlinePassed:
                send(client, IntakeProtocol.reply(.init("timeout", "no complete frame within \(seconds) s", closesConnection: true)))
                return
            case .stopping:
                return
            }
            send(client, handle(body, source: source))
        }
    }

    private func handle(_ body: [UInt8], source: String) -> [UInt8] {
        let event: AccessEvent
        do {
            event = try IntakeProtocol.event(from: body, source: source)
        } catch let refusal as IntakeProtocol.Refusal {
            return IntakeProtocol.reply(refusal)
        } catch {
            return IntakeProtocol.reply(.init("invalid", "the event could not be read"))
        }
        let pool = self.pool
        let outcome = Self.waitFor { try await pool.withConnection { try await $0.perform { try $0.recordReturningID(event) } } }
        switch outcome {
        case .success(let id):
            return IntakeProtocol.reply(["ok": true, "intake_id": id])
        case .failure(let error):
            logger.error("intake socket: event not recorded", metadata: ["error": "\(error)"])
            return IntakeProtocol.reply(.init("not_recorded", "the event could not be recorded; it is not in the journal: retry"))
        }
    }

    /// Runs async work from a dedicated (non-pool) thread and blocks that thread until it ends.
    /// The result crosses threads only through its `Locked` value, written before `signal()` and
    /// read after `wait()`, so it is always set when read.
    private static func waitFor<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) -> Result<T, any Error> {
        let result = Locked<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                let value = try await operation()
                result.withLock { $0 = .success(value) }
            } catch {
                result.withLock { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        return result.withLock { $0! }
    }

    private enum ReadOutcome {
        case complete([UInt8])
        case closed(received: Int)
        case deadlinePassed
        case stopping
    }

    /// Reads `count` bytes, waiting (in slices, to notice shutdown) no later than `deadline`.
    private func readExactly(_ fd: Int32, _ count: Int, before deadline: ContinuousClock.Instant) -> ReadOutcome {
        var bytes = [UInt8](repeating: 0, count: count)
        var received = 0
        while received < count {
            if stopping.withLock({ $0 }) { return .stopping }
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { return .deadlinePassed }
            let (seconds, attoseconds) = remaining.components
            let milliseconds = Int32(min(250, seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1))
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, milliseconds)
            if ready < 0 && errno != EINTR { return .closed(received: received) }
            guard ready > 0 else { continue }
            // Memory: `bytes` holds `count` bytes and `received < count` inside the loop, so the
            // read stays inside the array (and baseAddress is non-nil: count > 0 here).
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + received, count - received) }
            if n == 0 { return .closed(received: received) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { continue }
                return .closed(received: received)
            }
            received += n
        }
        return .complete(bytes)
    }

    private func send(_ fd: Int32, _ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            // Memory: `sent < bytes.count` inside the loop (so baseAddress is non-nil and the
            // range stays inside the array); MSG_NOSIGNAL: a closed peer gives EPIPE, not SIGPIPE.
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return }
            sent += n
        }
    }

    /// The peer's uid from SO_PEERCRED (struct ucred: pid, uid, gid as 32-bit values).
    static func peerUID(_ fd: Int32) -> UInt32? {
        // Memory: a tuple of three 32-bit values has struct ucred's size and layout; the
        // kernel writes at most `length` (12) bytes into it, and a shorter answer is refused.
        var credentials: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: credentials))
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0, length == 12 else { return nil }
        return credentials.1
    }
}
