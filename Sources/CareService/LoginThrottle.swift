/// Which login attempts may check their password now, which wait, which are
/// refused: a value type that returns decisions, tested without I/O
/// (``LoginThrottle`` runs it).
///
/// Password checks are bounded three ways: at most `running` at once in all
/// (each needs scrypt's memory), at most `perAddress` in progress (running or
/// waiting) per client address, at most `perAccount` per username tried; an
/// attempt over a bound is refused at once rather than queued. Waiting attempts
/// are served in turn across addresses (the address served longest ago first),
/// so a flood from one address waits behind its own attempts, never in front of
/// another address's.
struct LoginAdmission {
    /// The bounds.
    struct Limits: Sendable, Hashable {
        /// Password checks running at once.
        var running = 2
        /// Attempts in progress per client address.
        var perAddress = 4
        /// Attempts in progress per username.
        var perAccount = 2
        /// Attempts waiting in all.
        var waiting = 64
    }

    /// What to do with an attempt that arrives.
    enum Decision: Sendable, Hashable {
        /// Check its password now.
        case start
        /// Wait until ``leave(_:)`` returns its ticket.
        case wait
        /// Refuse it: a bound is reached.
        case refuse
    }

    private struct Attempt {
        let address: String
        let account: String
    }

    let limits: Limits
    private var attempts: [Int: Attempt] = [:]
    private(set) var running: Set<Int> = []
    private var waitingByAddress: [String: [Int]] = [:]
    private var turn: [String] = []
    private var waitingCount = 0
    private var perAddress: [String: Int] = [:]
    private var perAccount: [String: Int] = [:]

    init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// An attempt `ticket` from `address` for `account` arrives.
    mutating func arrive(_ ticket: Int, address: String, account: String) -> Decision {
        guard perAddress[address, default: 0] < limits.perAddress, perAccount[account, default: 0] < limits.perAccount else { return .refuse }
        if running.count < limits.running {
            admit(ticket, address: address, account: account)
            running.insert(ticket)
            return .start
        }
        guard waitingCount < limits.waiting else { return .refuse }
        admit(ticket, address: address, account: account)
        waitingByAddress[address, default: []].append(ticket)
        if waitingByAddress[address]!.count == 1 { turn.append(address) }
        waitingCount += 1
        return .wait
    }

    /// Attempt `ticket`, which was started, has checked its password.
    /// - Returns: the waiting attempt to start now, if any.
    mutating func leave(_ ticket: Int) -> Int? {
        guard running.remove(ticket) != nil, let attempt = attempts.removeValue(forKey: ticket) else { return nil }
        perAddress[attempt.address]! -= 1
        if perAddress[attempt.address] == 0 { perAddress[attempt.address] = nil }
        perAccount[attempt.account]! -= 1
        if perAccount[attempt.account] == 0 { perAccount[attempt.account] = nil }
        guard !turn.isEmpty else { return nil }
        let address = turn.removeFirst()
        let next = waitingByAddress[address]!.removeFirst()
        if waitingByAddress[address]!.isEmpty { waitingByAddress[address] = nil } else { turn.append(address) }
        waitingCount -= 1
        running.insert(next)
        return next
    }

    private mutating func admit(_ ticket: Int, address: String, account: String) {
        attempts[ticket] = Attempt(address: address, account: account)
        perAddress[address, default: 0] += 1
        perAccount[account, default: 0] += 1
    }
}

/// Runs ``LoginAdmission`` for the service's logins: ``enter(address:account:)``
/// waits for its turn (or is refused at once), ``leave(_:)`` hands the turn on.
actor LoginThrottle {
    private var admission: LoginAdmission
    private var nextTicket = 0
    private var waiting: [Int: CheckedContinuation<Void, Never>] = [:]

    init(limits: LoginAdmission.Limits = .init()) {
        admission = LoginAdmission(limits: limits)
    }

    /// Waits until the attempt may check its password.
    /// - Returns: its ticket, to hand to ``leave(_:)``; nil when refused.
    func enter(address: String, account: String) async -> Int? {
        nextTicket += 1
        let ticket = nextTicket
        switch admission.arrive(ticket, address: address, account: account) {
        case .refuse: return nil
        case .start: return ticket
        case .wait:
            await withCheckedContinuation { waiting[ticket] = $0 }
            return ticket
        }
    }

    /// The attempt's password check is over.
    func leave(_ ticket: Int) {
        if let next = admission.leave(ticket) { waiting.removeValue(forKey: next)?.resume() }
    }
}
