/// A parsed server URL (`postgresql://`, `mysql://`, `amqp://`, `amqps://`).
///
/// Parsing is done here, once, so that every wrapper validates the same way and every error
/// message can show the URL with its password replaced:
///
/// ```swift
/// let url = try ConnectionURL("mysql://app:s3cret@127.0.0.1:3306/reads")
/// url.redacted   // "mysql://app:***@127.0.0.1:3306/reads"
/// ```
public struct ConnectionURL: Sendable, Equatable, CustomStringConvertible {
    public var scheme: String
    public var user: String?
    /// The password, percent-decoded. Never part of `description` or `redacted`.
    public var password: String?
    public var host: String
    public var port: Int?
    /// The path after the host, percent-decoded, without the leading slash (database or vhost).
    public var path: String
    /// Query parameters in order, percent-decoded.
    public var queryItems: [(name: String, value: String)]

    public init(_ text: String) throws(ConnectionURLError) {
        guard let schemeEnd = text.firstRange(of: "://") else {
            throw ConnectionURLError(reason: "missing '://' (expected scheme://user:password@host:port/path)", redactedURL: Self.redact(text))
        }
        scheme = String(text[..<schemeEnd.lowerBound]).lowercased()
        guard !scheme.isEmpty, scheme.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." }) else {
            throw ConnectionURLError(reason: "invalid scheme", redactedURL: Self.redact(text))
        }
        var rest = Substring(text[schemeEnd.upperBound...])
        var query = Substring("")
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        var authority = rest
        var rawPath = Substring("")
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            rawPath = rest[rest.index(after: slash)...]
        }
        var hostPort = authority
        // The last '@' separates credentials: passwords may contain '@' when not encoded.
        if let at = authority.lastIndex(of: "@") {
            let credentials = authority[..<at]
            hostPort = authority[authority.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                user = try Self.decode(credentials[..<colon], part: "user", in: text)
                password = try Self.decode(credentials[credentials.index(after: colon)...], part: "password", in: text)
            } else {
                user = try Self.decode(credentials, part: "user", in: text)
            }
            if user?.isEmpty == true { user = nil }
        }
        if hostPort.hasPrefix("[") {
            // IPv6 literal: [::1]:5432
            guard let close = hostPort.firstIndex(of: "]") else {
                throw ConnectionURLError(reason: "unterminated IPv6 address", redactedURL: Self.redact(text))
            }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let afterClose = hostPort[hostPort.index(after: close)...]
            if afterClose.hasPrefix(":") {
                port = try Self.parsePort(afterClose.dropFirst(), in: text)
            } else if !afterClose.isEmpty {
                throw ConnectionURLError(reason: "unexpected text after IPv6 address", redactedURL: Self.redact(text))
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = try Self.decode(hostPort[..<colon], part: "host", in: text)
            port = try Self.parsePort(hostPort[hostPort.index(after: colon)...], in: text)
        } else {
            host = try Self.decode(hostPort, part: "host", in: text)
        }
        path = try Self.decode(rawPath, part: "path", in: text)
        queryItems = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = try Self.decode(parts[0], part: "query parameter", in: text)
            let value = parts.count > 1 ? try Self.decode(parts[1], part: "query parameter", in: text) : ""
            // libpq-style `?password=`: kept as the password, so every client uses it and every
            // redaction hides it.
            if name.lowercased() == "password" {
                if password == nil { password = value }
                continue
            }
            queryItems.append((name, value))
        }
    }

    public static func == (lhs: ConnectionURL, rhs: ConnectionURL) -> Bool {
        lhs.scheme == rhs.scheme && lhs.user == rhs.user && lhs.password == rhs.password && lhs.host == rhs.host
            && lhs.port == rhs.port && lhs.path == rhs.path
            && lhs.queryItems.map { "\($0.name)=\($0.value)" } == rhs.queryItems.map { "\($0.name)=\($0.value)" }
    }

    /// The last value of a query parameter, if present.
    public func queryValue(_ name: String) -> String? {
        queryItems.last(where: { $0.name == name })?.value
    }

    /// The URL with the password replaced by `***`: safe for logs and error messages.
    public var redacted: String {
        var text = scheme + "://"
        if let user {
            text += user
            if password != nil { text += ":***" }
            text += "@"
        }
        text += host.contains(":") ? "[\(host)]" : host
        if let port { text += ":\(port)" }
        if !path.isEmpty { text += "/" + path }
        if !queryItems.isEmpty {
            text += "?" + queryItems.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
        }
        return text
    }

    public var description: String { redacted }

    /// Replaces the password of anything that looks like a URL in `text` with `***`,
    /// for text that was not parsed (a malformed URL in an error message).
    public static func redact(_ text: String) -> String {
        var text = text
        for range in passwordRanges(in: text).reversed() { text.replaceSubrange(range, with: "***") }
        return text
    }

    /// Where the passwords of a URL in `text` are: `scheme://user:password@host…` and a
    /// `password=` query parameter, in order.
    public static func passwordRanges(in text: String) -> [Range<String.Index>] {
        var ranges: [Range<String.Index>] = []
        var searchFrom = text.startIndex
        while let schemeEnd = text[searchFrom...].firstRange(of: "://") {
            let (found, end) = passwordRanges(ofURLAfter: text[schemeEnd.upperBound...])
            ranges += found
            searchFrom = end
        }
        return ranges
    }

    /// The password ranges of the one URL whose scheme ends where `afterScheme` starts, and where
    /// that URL ends.
    private static func passwordRanges(ofURLAfter afterScheme: Substring) -> ([Range<String.Index>], String.Index) {
        var ranges: [Range<String.Index>] = []
        // A password may hold unencoded characters (even spaces): the authority ends only at '/' or '?'.
        let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? afterScheme.endIndex
        let authority = afterScheme[..<authorityEnd]
        if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") {
            ranges.append(authority.index(after: colon)..<at)
        }
        let url = afterScheme[..<(afterScheme[authorityEnd...].firstIndex(where: \.isWhitespace) ?? afterScheme.endIndex)]
        if let question = url[authorityEnd...].firstIndex(of: "?") {
            var start = url.index(after: question)
            while start < url.endIndex {
                let end = url[start...].firstIndex(of: "&") ?? url.endIndex
                let pair = url[start..<end]
                if let equals = pair.firstIndex(of: "="), pair[..<equals].lowercased() == "password" {
                    ranges.append(pair.index(after: equals)..<end)
                }
                start = end < url.endIndex ? url.index(after: end) : end
            }
        }
        return (ranges, url.endIndex)
    }

    private static func parsePort(_ text: Substring, in url: String) throws(ConnectionURLError) -> Int? {
        if text.isEmpty { return nil }
        guard let value = Int(text), (1...65535).contains(value) else {
            throw ConnectionURLError(reason: "port '\(text)' is not a number from 1 to 65535", redactedURL: redact(url))
        }
        return value
    }

    private static func decode(_ text: Substring, part: String, in url: String) throws(ConnectionURLError) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    throw ConnectionURLError(reason: "bad percent-encoding in the \(part)", redactedURL: redact(url))
                }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw ConnectionURLError(reason: "the \(part) is not UTF-8 after percent-decoding", redactedURL: redact(url))
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// A server URL that could not be parsed. Carries the URL with its password hidden.
public struct ConnectionURLError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var redactedURL: String
    public var description: String { "invalid connection URL \(redactedURL): \(reason)" }
}
