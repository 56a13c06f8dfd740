import Glibc

/// The group a daemon's Unix listening socket is given to (`care.socket_group`,
/// `console.socket_group`): the reverse proxy's user is in that group, and in no
/// other of the suite's, so it may connect to the socket and read nothing else. The
/// socket is made 0660 (connecting needs write permission). Under PrivateUsers=yes
/// only the unit's user and primary group are mapped: the socket group must be the
/// unit's Group= (the packaged units: Group=osmose-care-web or osmose-console-web,
/// SupplementaryGroups=osmose),
/// whose RuntimeDirectory= it then traverses.
public struct SocketGroup: Sendable, Equatable {
    /// The group's name, as configured.
    public let name: String
    let id: gid_t

    /// Looks the group up and checks that this process is in it (a process may give a
    /// file only to a group it belongs to): done at start-up, before listening.
    public init(named name: String) throws {
        guard let entry = getgrnam(name) else {
            throw SystemdError(.socketGroup, "the socket group \(name) does not exist (the package creates osmose-care-web and osmose-console-web; groupadd --system \(name))")
        }
        let id = entry.pointee.gr_gid
        let count = getgroups(0, nil)
        var groups = [gid_t](repeating: 0, count: Int(max(count, 0)))
        let filled = groups.isEmpty ? 0 : getgroups(Int32(groups.count), &groups)
        guard geteuid() == 0 || getegid() == id || groups.prefix(Int(max(filled, 0))).contains(id) else {
            throw SystemdError(
                .socketGroup, "this process's group is not the socket group \(name): make it the unit's Group=\(name) (with PrivateUsers=yes a supplementary group is not mapped)")
        }
        self.name = name
        self.id = id
    }

    /// Gives the socket at `path` to the group, read and write for owner and group only.
    public func grant(socketAt path: String) throws {
        var status = stat()
        guard stat(path, &status) == 0 else { throw SystemdError(.socketGroup, "cannot read \(path): \(errnoText())") }
        // Created in the process's group already when that is the socket group (the
        // packaged units): no chown, which their SystemCallFilter (~@privileged) refuses.
        guard status.st_gid == id || chown(path, uid_t.max, id) == 0 else {  // uid -1: the owner stays
            throw SystemdError(.socketGroup, "cannot give \(path) to the group \(name): \(errnoText())")
        }
        guard chmod(path, 0o660) == 0 else {
            throw SystemdError(.socketGroup, "cannot make \(path) 0660: \(errnoText())")
        }
    }
}
