/// Which login attempts may check their password now, which wait, which are
/// refused: a value type that returns decisions, tested without I/O
/// (``LoginThrottle`` runs it).
///
/// Password checks are bounded three ways: at most `running` at once in all
/// (each needs scrypt's memory), of which at most `runningPerAddress` for one
/// client address; at most `perAddress` in progress (running or waiting) per
/// client address, and `perAccount` per username tried. An attempt over an
/// in-progress bound is refused at once rather than queued. Waiting attempts are
/// served in turn across addresses (the address waiting longest first, among
/// those under their running share), so a flood from one address holds one
/// check at a time and waits behind its own attempts: another address's login
/// finds a check free.
package struct LoginAdmission {
    /// The bounds.
    package struct Limits: Sendable, Hashable {
        /// Password checks running at once.
        package var running = 2
        /// Password checks running at once for one client address.
        package var runningPerAddress = 1
        /// Attempts in progress per client address.
        package var perAddress = 4
        /// Attempts in progress per username.
        package var perAccount = 2
        /// Attempts waiting in all.
        package var waiting = 64

        /// The service's bounds.
        package init() {}
    }

    /// What to do with an attempt that arrives.
    package enum Decision: Sendable, Hashable {
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

    package let limits: Limits
    private var attempts: [Int: Attempt] = [:]
    package private(set) var running: Set<Int> = []
    private var waitingByAddress: [String: [Int]] = [:]
    private var turn: [String] = []
    private var waitingCount = 0
    private var perAddress: [String: Int] = [:]
    private var runningByAddress: [String: Int] = [:]
    private var perAccount: [String: Int] = [:]

    package init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// An attempt `ticket` from `address` for `account` arrives.
    package mutating func arrive(_ ticket: Int, address: String, account: String) -> Decision {
        guard perAddress[address, default: 0] < limits.perAddress, perAccount[account, default: 0] < limits.perAccount else { return .refuse }
        if running.count < limits.running, runningByAddress[address, default: 0] < limits.runningPerAddress {
            admit(ticket, address: address, account: account)
            start(ticket, address: address)
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
    package mutating func leave(_ ticket: Int) -> Int? {
        guard running.remove(ticket) != nil, let attempt = attempts.removeValue(forKey: ticket) else { return nil }
        Self.decrement(&perAddress, attempt.address)
        Self.decrement(&runningByAddress, attempt.address)
        Self.decrement(&perAccount, attempt.account)
        guard let index = turn.firstIndex(where: { runningByAddress[$0, default: 0] < limits.runningPerAddress }) else { return nil }
        let address = turn.remove(at: index)
        let next = waitingByAddress[address]!.removeFirst()
        if waitingByAddress[address]!.isEmpty { waitingByAddress[address] = nil } else { turn.append(address) }
        waitingCount -= 1
        start(next, address: address)
        return next
    }

    private mutating func admit(_ ticket: Int, address: String, account: String) {
        attempts[ticket] = Attempt(address: address, account: account)
        perAddress[address, default: 0] += 1
        perAccount[account, default: 0] += 1
    }

    private mutating func start(_ ticket: Int, address: String) {
        running.insert(ticket)
        runningByAddress[address, default: 0] += 1
    }

    private static func decrement(_ counts: inout [String: Int], _ key: String) {
        counts[key, default: 1] -= 1
        if counts[key] == 0 { counts[key] = nil }
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
