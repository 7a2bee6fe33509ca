import Foundation
import Synchronization
import RepriseEngine
import RepriseEventStore
import RepriseHTTP
import RepriseLive
import RepriseProjection
import Testing

/// The status page in a real browser: Debian's `chromium`, headless, against a page served by
/// the real endpoint over the real servers, with a live worker running, a poison event parked and
/// a rebuild held in the middle. `scripts/services start` installs chromium.
extension BrokerSuites {
@Suite("Dashboard in headless Chromium (real servers)", .serialized)
struct DashboardBrowserTests {
    static let ordersYAML = """
        name: dashboard_orders
        version: 1
        tables:
          dashboard_orders:
            columns:
              order_id: varchar(64) not null
              total_cents: bigint not null default 0
            primary_key: [order_id]
        handlers:
          OrderCreated:
            - upsert: { table: dashboard_orders, set: { order_id: payload.orderId, total_cents: payload.totalCents } }
        """

    @Test func thePageShowsProjectionsLagARebuildInProgressAndAParkedStream() async throws {
        let browser = try Self.chromium()
        let environment = try await RebuildEnvironment.make()
        let harness = LiveHarness(environment: environment)
        let orders = try ProjectionFileParser.parse(yaml: Self.ordersYAML, file: "dashboard_orders.yml")
        try await environment.seed(events: 600, seed: 93)
        _ = try await environment.engine().rebuild([.file(orders), .file(try streamCounts())])

        // A live worker on dashboard_orders; an OrderCreated whose total is not a number parks its stream.
        let stop = StopSignal()
        let worker = Task { try await harness.worker(.file(orders)).run(stop: stop) }
        var ids = RandomEventID()
        try await environment.store.append(
            [StreamAppend(streamID: "order-<b>POISON</b>", expectedVersion: .noStream, events: [
                NewEvent(eventID: ids.next(), type: "OrderCreated", payload: #"{"orderId":"POISON","totalCents":"lots"}"#),
            ])], on: environment.postgres)
        let parked = ParkedStreamStore(connection: environment.mysql)
        try await parked.ensureTable()
        try await waitUntil("the poison stream to be parked") { try await !parked.list(projection: "dashboard_orders").isEmpty }

        // A rebuild of stream_counts held after its second chunk: in progress while the page loads.
        let gate = Gate()
        var hooks = RebuildHooks()
        hooks.afterChunkCommit = { chunk in if chunk >= 2 { await gate.wait() } }
        let rebuild = Task { [hooks] in
            try await environment.engine { $0.chunkSize = 50; $0.fetchSize = 50 }.rebuild([.file(try streamCounts())], hooks: hooks)
        }
        try await waitUntil("the rebuild to be in progress") {
            try await environment.mysql.query(
                "SELECT count(*) FROM reprise_builds WHERE projection = 'stream_counts' AND state = 'building' AND events_applied > 0").int(0, 0) == 1
        }

        let source = StatusSnapshot.Source(
            postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL, eventSource: .reprise(environment.storeSchema))
        // The README's picture is refreshed on request only (REPRISE_UPDATE_DOCS=1), so a test run
        // leaves the work tree clean; otherwise the screenshot goes to the temporary folder.
        let folder = ProcessInfo.processInfo.environment["REPRISE_UPDATE_DOCS"] == "1"
            ? RebuildEnvironment.repositoryRoot() + "/docs" : FileManager.default.temporaryDirectory.path + "/reprise-dashboard-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let screenshot = folder + "/dashboard.png"
        let dom = try await withStatusEndpoint(StatusEndpoint(port: 0, status: source)) { port in
            let url = "http://127.0.0.1:\(port)/"
            let dom = try await Self.run(browser, ["--dump-dom", url])
            _ = try await Self.run(browser, ["--screenshot=\(screenshot)", "--window-size=1360,1100", url])
            return dom
        }
        gate.open()
        _ = try await rebuild.value
        stop.stop()
        try await worker.value

        // The projection names, a lag figure, the rebuild with its progress bar, the parked stream
        // with its error: all escaped (the stream id holds markup).
        #expect(dom.contains(">dashboard_orders</td>") && dom.contains(">stream_counts</td>"), "\(dom)")
        let lag = dom.firstMatch(of: /class="num lag-events">([0-9]+)</)
        #expect(lag != nil, "no lag figure in \(dom)")
        #expect(dom.contains("<progress"))
        #expect(dom.contains("rebuild v1"))
        #expect(dom.contains("order-&lt;b&gt;POISON&lt;/b&gt;"), "the parked stream, escaped")
        #expect(!dom.contains("<b>POISON</b>"))
        #expect(dom.contains("not a whole number"), "the parked stream's error")
        #expect(!dom.contains("<script") && !dom.contains("<form"))
        // A real PNG was written for the README.
        let png = try #require(FileManager.default.contents(atPath: screenshot))
        #expect(png.count > 10_000 && png.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]))

        await harness.cleanUp()
        await environment.tearDown()
    }

    static func chromium() throws -> String {
        for path in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        throw TestSetupError("Debian's chromium is not installed: `scripts/services start` installs it (apt-get install -y chromium)")
    }

    /// Runs headless Chromium off the cooperative pool (it blocks until the page is rendered),
    /// with nothing fetched but the page: no first-run, no component update, no background network.
    static func run(_ browser: String, _ arguments: [String]) async throws -> String {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.uniqueName("chromium")).path
        defer { try? FileManager.default.removeItem(atPath: profile) }
        let all = [
            "120", browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            "--user-data-dir=\(profile)",
        ] + arguments
        let outcome = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ProcessOutcome, any Error>) in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try runProcess("/usr/bin/timeout", all) })
            }
        }
        guard outcome.status == 0 else { throw TestSetupError("chromium exited \(outcome.status): \(outcome.standardError)") }
        return outcome.standardOutput
    }
}
}

/// Holds whoever waits until `open()`; waiting after `open()` returns at once.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.open { return true }
                state.waiting.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func open() {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }
}
