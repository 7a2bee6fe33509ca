import RepriseEngine
import RepriseLive

/// The read-only status page of `reprise dashboard` (and the workers' endpoints): plain HTML with
/// inline CSS, refreshed by a meta refresh, no script and nothing fetched from elsewhere. Every
/// value shown is HTML-escaped; the page has no form and no link that changes anything.
public enum DashboardPage {
    /// The whole page for `snapshot`. `now` (seconds since 1970, UTC) dates the page and
    /// computes the rate and ETA of builds in progress.
    public static func render(_ snapshot: StatusSnapshot, refreshSeconds: Int, now: Double) -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta http-equiv="refresh" content="\(max(1, refreshSeconds))">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Reprise status</title>
            <style>\(style)</style>
            </head><body>
            <header><h1>Reprise status</h1><p class="meta">read at <time>\(escape(timestamp(now)))</time> · refreshes every \(max(1, refreshSeconds)) s · read-only</p></header>

            """
        html += projectionsSection(snapshot.projections)
        html += progressSection(snapshot, now: now)
        html += rebuildPartitionsSection(snapshot.projections)
        html += livePartitionsSection(snapshot.projections)
        html += parkedSection(snapshot.parked)
        html += retiredSection(snapshot.projections)
        html += relaysSection(snapshot.relays)
        html += "</body></html>\n"
        return html
    }

    /// The page shown when the servers cannot be read (the error is escaped and redacted by the caller).
    public static func renderUnavailable(_ message: String, refreshSeconds: Int, now: Double) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="\(max(1, refreshSeconds))">
        <title>Reprise status</title><style>\(style)</style></head><body>
        <header><h1>Reprise status</h1><p class="meta">read at <time>\(escape(timestamp(now)))</time></p></header>
        <section><h2>Unavailable</h2><p class="error" id="unavailable">\(escape(message))</p></section>
        </body></html>

        """
    }

    // MARK: - Sections

    private static func projectionsSection(_ projections: [ProjectionStatus]) -> String {
        guard !projections.isEmpty else {
            return section("Projections", id: "projections", "<p class=\"empty\">No projection has been built yet: run <code>reprise rebuild --all</code>.</p>")
        }
        let rows = projections.map { status in
            let error = (status.building.compactMap(\.lastError) + [status.active?.lastError].compactMap { $0 }).last ?? ""
            return row([
                cell(status.projection, class: "projection"),
                cell(status.active.map { "v\($0.version)" } ?? "–"),
                cell(status.active.map { String($0.buildID) } ?? "–"),
                cell(status.lagEvents.map(String.init) ?? "–", class: "num lag-events"),
                cell(status.lagSeconds.map { String(Int($0.rounded())) } ?? "–", class: "num lag-seconds"),
                cell(String(status.building.count), class: "num"),
                cell(String(status.parkedStreams), class: status.parkedStreams > 0 ? "num warn" : "num"),
                cell(String(error.prefix(200)), class: "error"),
            ], attributes: "data-projection=\"\(escape(status.projection))\"")
        }
        return section("Projections", id: "projections", table(
            ["Projection", "Active version", "Build", "Lag (events)", "Lag (s)", "In progress", "Parked streams", "Last error"], rows))
    }

    private static func progressSection(_ snapshot: StatusSnapshot, now: Double) -> String {
        var rows: [String] = []
        for status in snapshot.projections {
            for build in status.building {
                let kind = status.active.map { $0.version != build.version } ?? false ? "migration v\(status.active?.version ?? 0) → v\(build.version)" : "rebuild v\(build.version)"
                let progress = Progress(build: build, storeEvents: snapshot.storeEvents, now: now)
                rows.append(row([
                    cell(status.projection, class: "projection"),
                    cell(String(build.buildID)),
                    cell(kind),
                    "<td class=\"bar\"><progress max=\"1000\" value=\"\(Int(progress.fraction * 1000))\"></progress> <span class=\"percent\">\(escape(progress.percentText))</span></td>",
                    cell(progress.detail),
                    cell(progress.rate.map { "\(Int($0.rounded())) events/s" } ?? "–", class: "num"),
                    cell(progress.eta.map(duration) ?? "–", class: "num eta"),
                    cell(build.lastError ?? "", class: "error"),
                ]))
            }
        }
        let body = rows.isEmpty ? "<p class=\"empty\">No rebuild or migration in progress.</p>"
            : table(["Projection", "Build", "Kind", "Progress", "Done", "Rate", "ETA", "Last error"], rows)
        return section("Rebuilds and migrations in progress", id: "in-progress", body)
    }

    private static func rebuildPartitionsSection(_ projections: [ProjectionStatus]) -> String {
        let rows = projections.flatMap { status in
            status.building.flatMap { build in
                build.partitions.map { partition in
                    row([
                        cell(status.projection, class: "projection"), cell(String(build.buildID)), cell("\(partition.number) of \(partition.count)"),
                        cell(partition.state.rawValue), cell(partition.owner ?? "–", class: "owner"), cell(String(partition.eventsApplied), class: "num"),
                        cell(String(partition.roundPosition), class: "num"), cell(partition.secondsSinceHeartbeat.map(ago) ?? "–", class: "num"),
                    ])
                }
            }
        }
        guard !rows.isEmpty else { return "" }
        return section("Rebuild partitions", id: "rebuild-partitions", table(
            ["Projection", "Build", "Partition", "State", "Owner", "Events", "Position", "Last heartbeat"], rows))
    }

    private static func livePartitionsSection(_ projections: [ProjectionStatus]) -> String {
        let rows = projections.flatMap { status in
            status.livePartitions.map { partition, lag in
                row([
                    cell(status.projection, class: "projection"), cell(status.active.map { String($0.buildID) } ?? "–"),
                    cell("\(partition.number) of \(partition.count)"), cell(partition.owner ?? "–", class: "owner"),
                    cell(String(partition.eventsApplied), class: "num"), cell(String(partition.roundPosition), class: "num"),
                    cell(lag.map(String.init) ?? "–", class: "num lag-events"), cell(partition.secondsSinceHeartbeat.map(ago) ?? "–", class: "num"),
                ])
            }
        }
        guard !rows.isEmpty else { return "" }
        return section("Live partitions", id: "live-partitions", table(
            ["Projection", "Build", "Partition", "Owner", "Events", "Position", "Lag (events)", "Last heartbeat"], rows))
    }

    private static func parkedSection(_ parked: [ParkedStream]) -> String {
        guard !parked.isEmpty else { return section("Parked streams", id: "parked", "<p class=\"empty\">No parked stream.</p>") }
        let rows = parked.map { entry in
            row([
                cell(entry.projection, class: "projection"), cell(entry.streamID, class: "stream"), cell(String(entry.position), class: "num"),
                cell(entry.eventType), cell(entry.livePartition.isEmpty ? "all" : entry.livePartition), cell(entry.action.rawValue),
                cell(entry.parkedAt), cell(entry.error, class: "error"),
            ])
        }
        return section("Parked streams", id: "parked", table(
            ["Projection", "Stream", "Position", "Event type", "Partition", "Action", "Parked at", "Error"], rows)
            + "<p class=\"hint\">Release with <code>reprise parked retry|skip --projection P --stream S</code>.</p>")
    }

    private static func retiredSection(_ projections: [ProjectionStatus]) -> String {
        let rows = projections.flatMap { status in
            status.retired.reversed().map { build in
                row([
                    cell(status.projection, class: "projection"), cell(String(build.buildID)), cell("v\(build.version)"),
                    cell(String(build.eventsApplied), class: "num"), cell(build.updatedAt),
                ])
            }
        }
        let body = rows.isEmpty ? "<p class=\"empty\">No retired build kept.</p>"
            : table(["Projection", "Build", "Version", "Events applied", "Retired at"], rows)
                + "<p class=\"hint\">Roll back with <code>reprise rollback --projection P --build B</code>.</p>"
        return section("Retired builds available for rollback", id: "retired", body)
    }

    private static func relaysSection(_ relays: [OutboxRelay.Announcement]) -> String {
        guard !relays.isEmpty else { return "" }
        let rows = relays.map { relay in
            row([
                cell(relay.owner, class: "owner"), cell(relay.outbox), cell(relay.shares.map(String.init).joined(separator: ",") + " of \(relay.of)"),
                cell(duration(relay.sessionSeconds), class: "num"),
            ])
        }
        return section("Relays", id: "relays", table(["Owner", "Outbox", "Shares", "Session age"], rows))
    }

    // MARK: - Progress of a build

    struct Progress {
        var fraction: Double
        var percentText: String
        var detail: String
        var rate: Double?
        var eta: Double?

        init(build: ProjectionStatus.Build, storeEvents: Int64?, now: Double) {
            let elapsed = (DashboardPage.parseTimestamp(build.updatedAt) ?? now) - (DashboardPage.parseTimestamp(build.startedAt) ?? now)
            let applied = build.partitions.isEmpty ? build.eventsApplied : build.partitions.reduce(Int64(0)) { $0 + $1.eventsApplied }
            rate = elapsed > 0 && applied > 0 ? Double(applied) / elapsed : nil
            if !build.partitions.isEmpty {
                let done = build.partitions.filter { $0.state == .done }.count
                fraction = Double(done) / Double(build.partitions.count)
                detail = "\(done) of \(build.partitions.count) partitions done, \(applied) events"
            } else {
                fraction = 0
                detail = "\(applied) events, round \(build.rounds)"
            }
            // The first round reads every event of the store: the estimate of its size sets the bar.
            if let total = storeEvents, total > 0, build.rounds <= 1 {
                let byEvents = min(1, Double(applied) / Double(total))
                fraction = build.partitions.isEmpty ? byEvents : max(fraction, byEvents)
                detail = build.partitions.isEmpty ? "\(applied) of ≈\(total) events" : detail + " of ≈\(total)"
                if let rate, rate > 0 { eta = Double(max(0, total - applied)) / rate }
            }
            percentText = "\(Int((fraction * 100).rounded(.down)))%"
        }
    }

    // MARK: - HTML helpers

    /// Escapes text for HTML element content and double-quoted attribute values.
    public static func escape(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.append(character)
            }
        }
        return result
    }

    private static func section(_ title: String, id: String, _ body: String) -> String {
        "<section id=\"\(id)\"><h2>\(escape(title))</h2>\n\(body)\n</section>\n"
    }

    private static func table(_ headers: [String], _ rows: [String]) -> String {
        "<table><thead><tr>" + headers.map { "<th>\(escape($0))</th>" }.joined() + "</tr></thead><tbody>\n"
            + rows.joined(separator: "\n") + "\n</tbody></table>"
    }

    private static func row(_ cells: [String], attributes: String = "") -> String {
        "<tr\(attributes.isEmpty ? "" : " " + attributes)>" + cells.joined() + "</tr>"
    }

    private static func cell(_ text: String, class name: String? = nil) -> String {
        "<td\(name.map { " class=\"\($0)\"" } ?? "")>\(escape(text))</td>"
    }

    private static func ago(_ seconds: Double) -> String { duration(seconds) + " ago" }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        if total < 60 { return "\(total) s" }
        if total < 3600 { return "\(total / 60) min \(total % 60) s" }
        return "\(total / 3600) h \(total % 3600 / 60) min"
    }

    /// "2026-11-30T05:00:00Z" (the registry's format) to seconds since 1970.
    static func parseTimestamp(_ text: String) -> Double? {
        let digits = text.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        guard digits.count >= 6 else { return nil }
        let (year, month, day) = (digits[0], digits[1], digits[2])
        // Days from civil (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return Double(days * 86_400 + digits[3] * 3600 + digits[4] * 60 + digits[5])
    }

    static func timestamp(_ seconds: Double) -> String {
        let total = Int(seconds)
        var days = total / 86_400
        let rest = total % 86_400
        // Civil from days (Howard Hinnant's algorithm).
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthPart = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthPart + 2) / 5 + 1
        let month = monthPart < 10 ? monthPart + 3 : monthPart - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(year)-\(two(month))-\(two(day)) \(two(rest / 3600)):\(two(rest % 3600 / 60)):\(two(rest % 60)) UTC"
    }

    private static let style = """
        body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 24px 24px;color:#1d2430;background:#f7f8fa}
        header{display:flex;align-items:baseline;gap:16px;border-bottom:1px solid #d8dde6;margin-bottom:8px}
        h1{font-size:20px;margin:16px 0 8px}h2{font-size:15px;margin:18px 0 6px;color:#3a4658}
        .meta{color:#6b7687;margin:0}
        table{border-collapse:collapse;background:#fff;border:1px solid #d8dde6;min-width:60%}
        th,td{padding:4px 10px;border-bottom:1px solid #edf0f4;text-align:left;vertical-align:top}
        th{background:#eef1f5;font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:#4a5568}
        td.num{text-align:right;font-variant-numeric:tabular-nums}
        td.projection{font-weight:600}td.error{color:#b42318;max-width:40em;word-break:break-word}
        td.warn{color:#b42318;font-weight:600}.empty,.hint{color:#6b7687}
        progress{width:180px;height:12px;vertical-align:middle}code{background:#eef1f5;padding:0 4px;border-radius:3px}
        """
}
