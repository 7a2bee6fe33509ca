import RepriseSupport
import Testing

@Suite("Connection URLs")
struct ConnectionURLTests {
    @Test func parsesEveryPart() throws {
        let url = try ConnectionURL("postgresql://app:s3cret@db.local:5433/events?sslmode=verify-full&application_name=x")
        #expect(url.scheme == "postgresql")
        #expect(url.user == "app")
        #expect(url.password == "s3cret")
        #expect(url.host == "db.local")
        #expect(url.port == 5433)
        #expect(url.path == "events")
        #expect(url.queryValue("sslmode") == "verify-full")
        #expect(url.queryValue("application_name") == "x")
    }

    @Test func decodesPercentEncodingAndKeepsAtSignsInPasswords() throws {
        let url = try ConnectionURL("amqp://guest:p%40ss@w0rd@127.0.0.1:5672/%2F")
        #expect(url.password == "p@ss@w0rd")
        #expect(url.host == "127.0.0.1")
        #expect(url.path == "/")
    }

    @Test func parsesIPv6Hosts() throws {
        let url = try ConnectionURL("mysql://root@[::1]:3306/reads")
        #expect(url.host == "::1")
        #expect(url.port == 3306)
        #expect(url.password == nil)
        #expect(url.redacted == "mysql://root@[::1]:3306/reads")
    }

    @Test func redactionHidesThePassword() throws {
        let url = try ConnectionURL("mysql://app:topsecret@127.0.0.1:3306/reads")
        #expect(url.redacted == "mysql://app:***@127.0.0.1:3306/reads")
        #expect(!url.description.contains("topsecret"))
        #expect(ConnectionURL.redact("failed for postgresql://u:hunter22@h:1/db now") == "failed for postgresql://u:***@h:1/db now")
    }

    @Test func aPasswordInTheQueryIsThePasswordAndHidden() throws {
        let url = try ConnectionURL("postgresql://app@db:5432/events?sslmode=verify-full&password=hunter22")
        #expect(url.password == "hunter22")
        #expect(url.queryItems.map(\.name) == ["sslmode"], "not passed on a second time as a query parameter")
        #expect(url.redacted == "postgresql://app:***@db:5432/events?sslmode=verify-full")
        #expect(ConnectionURL.redact("bad postgresql://app@db/x?Password=hunter22&a=1 and postgresql://u:pw@h/y")
            == "bad postgresql://app@db/x?Password=***&a=1 and postgresql://u:***@h/y")
        #expect(ConnectionURL.redact("mysql://u:pa ss@h/db?password=p2") == "mysql://u:***@h/db?password=***")
    }

    @Test(arguments: ["no-scheme-here", "postgresql://u:p@host:99999/db", "postgresql://u:p@host:abc/db", "amqp://u:%zz@h/"])
    func rejectsMalformedURLsWithoutLeakingPasswords(_ text: String) {
        do {
            _ = try ConnectionURL(text)
            Issue.record("expected \(text) to be rejected")
        } catch {
            #expect(!error.description.contains(":p@"))
            #expect(!error.description.isEmpty)
        }
    }

    @Test func redactorReplacesEverySecretOccurrence() {
        let redactor = SecretRedactor(secrets: ["hunter22", nil])
        #expect(redactor.redact("password hunter22 was wrong: hunter22") == "password *** was wrong: ***")
    }
}

@Suite("Process title")
struct ProcessTitleTests {
    @Test func findsThePasswordOfAURLArgument() {
        func hidden(_ text: String) -> String {
            var bytes = Array(text.utf8)
            for range in ProcessTitle.passwordRanges(in: bytes) { for index in range { bytes[index] = UInt8(ascii: "x") } }
            return String(decoding: bytes, as: UTF8.self)
        }
        #expect(hidden("postgresql://app:s3cret@db:5432/events") == "postgresql://app:xxxxxx@db:5432/events")
        #expect(hidden("--mysql-url=mysql://root:p@ss@127.0.0.1/x") == "--mysql-url=mysql://root:xxxx@127.0.0.1/x")
        #expect(hidden("amqp://guest@host/%2F") == "amqp://guest@host/%2F")
        #expect(hidden("--chunk-size") == "--chunk-size")
        #expect(hidden("postgresql://app@db/events?sslmode=require&password=s3cret") == "postgresql://app@db/events?sslmode=require&password=xxxxxx")
    }
}
