/// Edit distances, used to suggest the option a misspelt config key probably meant.
public enum EditDistance {
    /// Levenshtein distance.
    ///
    /// The number of single-character insertions, deletions and substitutions that turn `a` into `b`, counting
    /// `Character`s (grapheme clusters) and comparing them exactly (case-sensitive).
    public static func distance(_ a: String, _ b: String) -> Int {
        let source = Array(a)
        let target = Array(b)
        guard !source.isEmpty else {
            return target.count
        }
        guard !target.isEmpty else {
            return source.count
        }
        var previous = Array(0...target.count)
        var current = Array(repeating: 0, count: target.count + 1)
        for i in 1...source.count {
            current[0] = i
            for j in 1...target.count {
                let substitution = previous[j - 1] + (source[i - 1] == target[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            swap(&previous, &current)
        }
        return previous[target.count]
    }

    /// The closest candidate if it is close enough to be a likely typo
    /// (distance <= max(1, min(3, name.count / 3)) ), else nil.
    ///
    /// On a tie the candidate that comes first in `candidates` wins. A candidate equal to `name` has distance 0 and
    /// is returned, so callers should only ask about names they already know are unknown.
    public static func suggestion(for name: String, among candidates: [String]) -> String? {
        let limit = max(1, min(3, name.count / 3))
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            let candidateDistance = distance(name, candidate)
            if candidateDistance <= limit, candidateDistance < best?.distance ?? Int.max {
                best = (candidate, candidateDistance)
            }
        }
        return best?.candidate
    }
}
