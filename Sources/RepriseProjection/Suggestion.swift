/// "Did you mean" hints for misspelt keys, tables, columns and functions.
enum Suggestion {
    /// ` (did you mean 'x'?)` when a candidate is within a small edit distance, else empty.
    static func didYouMean(_ word: String, among candidates: some Sequence<String>) -> String {
        let limit = max(1, min(3, word.count / 3))
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            let distance = editDistance(word, candidate)
            if distance <= limit, distance < (best?.distance ?? Int.max) { best = (candidate, distance) }
        }
        return best.map { " (did you mean '\($0.candidate)'?)" } ?? ""
    }

    /// Levenshtein distance over Unicode scalars; inputs here are short names.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let x = Array(a.unicodeScalars.prefix(100))
        let y = Array(b.unicodeScalars.prefix(100))
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var previous = Array(0...y.count)
        var current = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            current[0] = i
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[y.count]
    }
}
