import Foundation
import Logging
import RepriseLogging
import RepriseSupport
import Testing

@Suite("Log lines (swift-log handler)")
struct LogHandlerTests {
    let redactor = SecretRedactor(secrets: ["s3cret-pw"])

    @Test func jsonLinesCarryTheMetadataAndNoPassword() throws {
        let line = RepriseLogHandler.format(
            level: .error, message: "live.parked",
            metadata: ["projection": "order_summary", "position": "42", "error": "connect to postgresql://app:s3cret-pw@db/x failed: s3cret-pw"],
            label: "reprise.live", format: .json, redactor: redactor, timestamp: "2026-11-30T05:00:00.000Z")
        #expect(!line.contains("s3cret-pw"))
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object["event"] == "live.parked")
        #expect(object["level"] == "error")
        #expect(object["projection"] == "order_summary")
        #expect(object["position"] == "42")
        #expect(object["ts"] == "2026-11-30T05:00:00.000Z")
    }

    @Test func aMetadataKeyCannotOverwriteTheEvent() throws {
        let line = RepriseLogHandler.format(
            level: .info, message: "relay.active", metadata: ["event": "forged"], label: "reprise.relay", format: .json,
            redactor: redactor, timestamp: "t")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object["event"] == "relay.active")
        #expect(object["meta_event"] == "forged")
    }

    @Test func textLinesAreOneLineAndRedacted() {
        let line = RepriseLogHandler.format(
            level: .warning, message: "live.store_unavailable", metadata: ["error": "lost\nmysql://u:s3cret-pw@h/db", "attempt": "2"],
            label: "reprise.live", format: .text, redactor: redactor, timestamp: "2026-11-30T05:00:00.000Z")
        #expect(line.hasPrefix("2026-11-30T05:00:00.000Z warning  live.store_unavailable attempt=2 error="))
        #expect(!line.contains("s3cret-pw"))
        #expect(!line.contains("\n"))
    }
}
