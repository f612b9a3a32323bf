/// Why a token was kept.
public enum TokenRole: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Highest object-layer score: marks where the objects are.
    case anchor
    /// Grid neighbour of an anchor: keeps the object's extent.
    case buffer
    /// Highest deep-layer score among the rest: carries global context.
    case register
    /// HiPrune++: most similar to the prompt among the rest.
    case prompt
    /// Kept by a baseline policy, which has no finer reason.
    case kept

    public var description: String { rawValue }
}

/// The tokens of one frame that reach the language model.
///
/// Built only by the policies in this module, so its invariants always hold: indices are
/// unique, ascending (raster order), inside the grid, and `roles[i]` is the role of `indices[i]`.
public struct Selection: Sendable, Hashable {
    public let grid: TokenGrid
    public let indices: [Int]
    public let roles: [TokenRole]

    /// From a per-token role table (nil = dropped); scanning in order yields raster order.
    init(grid: TokenGrid, roleByToken: [TokenRole?]) {
        var indices: [Int] = []
        var roles: [TokenRole] = []
        for (index, role) in roleByToken.enumerated() {
            if let role {
                indices.append(index)
                roles.append(role)
            }
        }
        self.grid = grid
        self.indices = indices
        self.roles = roles
    }

    public var count: Int { indices.count }

    public func count(of role: TokenRole) -> Int { roles.reduce(0) { $0 + ($1 == role ? 1 : 0) } }

    /// Kept tokens per role; roles with no token are absent.
    public var counts: [TokenRole: Int] {
        var counts: [TokenRole: Int] = [:]
        for role in roles { counts[role, default: 0] += 1 }
        return counts
    }

    /// Kept indices that have `role`, ascending.
    public func indices(of role: TokenRole) -> [Int] {
        zip(indices, roles).compactMap { $0.1 == role ? $0.0 : nil }
    }

    /// Original (row, col) of every kept token, for position encodings that must not be recomputed.
    public var positions: [(row: Int, col: Int)] { indices.map { grid.position(of: $0) } }
}
