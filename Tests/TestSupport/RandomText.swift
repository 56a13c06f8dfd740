/// Random Unicode of the kind hostile clients send into whatever reaches an access
/// event: combining marks, emoji sequences, NUL and other control characters,
/// bidirectional controls, separators, byte-order marks, quotes and escapes, from
/// empty to hundreds of code points. Drawn from a seeded generator, so a failing
/// text can be replayed.
public enum RandomText {
    /// The pieces a text is made of.
    public static let pieces: [String] = [
        "a", "Z", "é", "e\u{301}", "\u{301}", "\u{0}", "\u{1}", "\t", "\n", "\r", "\u{1B}", "\u{7F}", "\u{85}", "\u{9F}", "\u{2028}",
        "\u{202E}", "\u{2066}", "\u{200F}", "👩🏽‍⚕️", "🇫🇷", "李", "'", "\"", "\\", "%", "%00", ";", " ", "\u{FEFF}", "\u{FFFD}", "\u{10FFFF}",
    ]

    /// A text of 0 to 700 pieces.
    public static func make(using generator: inout SeededGenerator) -> String {
        let length = [0, 1, 3, 20, 200, 700].randomElement(using: &generator)!
        var text = ""
        for _ in 0..<length { text += pieces.randomElement(using: &generator)! }
        return text
    }
}
