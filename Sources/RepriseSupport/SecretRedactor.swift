/// Removes known secrets from text before it reaches a log or an error message.
///
/// Server error texts are produced by C libraries we do not control; every wrapper passes
/// them through a redactor built from the connection's password, so even a library that
/// echoed a password could not leak it.
public struct SecretRedactor: Sendable {
    private let secrets: [String]

    public init(secrets: [String?]) {
        // Very short secrets would blank out ordinary words; they are still never logged by us.
        self.secrets = secrets.compactMap { $0 }.filter { $0.count >= 3 }
    }

    public func redact(_ text: String) -> String {
        var result = ConnectionURL.redact(text)
        for secret in secrets where result.contains(secret) {
            result = result.replacing(secret, with: "***")
        }
        return result
    }
}

