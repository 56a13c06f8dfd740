import Foundation
import QRCode
import Testing
import TestSupport

/// The QR codes libqrencode makes, read back by an independent decoder (zbarimg, Debian's zbar-tools).
@Suite("QR codes")
struct QRCodeTests {
    @Test("an otpauth URL encoded as a QR code is read back identically by zbarimg", arguments: [
        "otpauth://totp/Osmose:admin.chloe?secret=IFBEGRCFIZDUQSKKJNGE2TSPKBIVEU2UKVLFOWCZLIZDGNBVGY3Q&issuer=Osmose",
        "otpauth://totp/Osmose:r%C3%A9mi.dupr%C3%A9?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Osmose",
    ])
    func roundTrip(text: String) async throws {
        let code = try QRCode(encoding: text)
        #expect(code.width >= 21 && (code.width - 17) % 4 == 0, "a QR code's side is 17 + 4 × version modules")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-qr-\(UUID().uuidString.prefix(8)).pbm")
        try Data(code.pbm(scale: 6)).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try await runProgram("/usr/bin/zbarimg", ["--raw", "-q", "--set", "disable", "--set", "qrcode.enable", file.path])
        #expect(result.status == 0, "zbarimg read it: \(result.standardError)")
        #expect(result.standardOutput.trimmingCharacters(in: .newlines) == text)
        let svg = code.svg(size: 200, title: "Code <QR>")
        #expect(svg.hasPrefix("<svg") && svg.contains("<title id=\"qr-title\">Code &lt;QR></title>"))
    }
}
