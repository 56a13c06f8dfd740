import Foundation

/// Dates as the console shows them: in Europe/Paris (the users' time, summer time
/// included), French order (`04/12/2026 20:48:35`). Formatted from the zone's
/// offset and the calendar arithmetic of `gmtime_r`: an ICU formatter per value is
/// expensive on Linux (docs/development.md).
enum ParisTime {
    static let zone = TimeZone(identifier: "Europe/Paris")!

    /// The zone `identifier` names (the configuration's, validated when loaded), else Paris.
    static func zone(named identifier: String) -> TimeZone { TimeZone(identifier: identifier) ?? zone }

    /// `date` as `dd/MM/yyyy HH:mm:ss`, Paris time.
    static func format(_ date: Date) -> String {
        let local = Int(date.timeIntervalSince1970.rounded(.down)) + zone.secondsFromGMT(for: date)
        var seconds = time_t(local)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(two(parts.tm_mday))/\(two(parts.tm_mon + 1))/\(parts.tm_year + 1900) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }

    /// Microseconds since the Unix epoch (the journal's timestamps), Paris time.
    static func format(microseconds: Int64) -> String {
        format(Date(timeIntervalSince1970: TimeInterval(microseconds / 1_000_000)))
    }

    /// A day typed in a form (`2026-12-04`, as `<input type="date">` sends it) as its
    /// first moment in Paris; nil when malformed.
    static func startOfDay(_ text: String) -> Date? {
        let parts = text.split(separator: "-")
        guard parts.count == 3, let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
            (1970...9999).contains(year), (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        guard let date = calendar.date(from: DateComponents(year: year, month: month, day: day)),
            calendar.component(.day, from: date) == day
        else { return nil }
        return date
    }

    /// A day and a time of day typed in a form (`2026-12-04`, `14:30`), Paris time; nil when malformed.
    static func moment(day: String, time: String) -> Date? {
        let parts = time.split(separator: ":")
        guard let start = startOfDay(day), parts.count >= 2, let hour = Int(parts[0]), let minute = Int(parts[1]), (0...23).contains(hour),
            (0...59).contains(minute)
        else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        var components = calendar.dateComponents([.year, .month, .day], from: start)
        components.hour = hour
        components.minute = minute
        return calendar.date(from: components)
    }

    /// `date` as `dd/MM/yyyy`, Paris time.
    static func day(_ date: Date) -> String { String(format(date).prefix(10)) }

    /// "il y a 3 min" style: how long ago, in the catalogue's words.
    static func age(since date: Date, now: Date = Date(), strings: (String) -> String) -> String {
        let seconds = max(0, Int(now.timeIntervalSince(date)))
        if seconds < 120 { return "\(seconds) \(strings("unit_seconds"))" }
        if seconds < 7200 { return "\(seconds / 60) \(strings("unit_minutes"))" }
        if seconds < 172_800 { return "\(seconds / 3600) \(strings("unit_hours"))" }
        return "\(seconds / 86400) \(strings("unit_days"))"
    }
}
