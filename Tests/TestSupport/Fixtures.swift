import Foundation
import XCTest

/// Paths of the repository, of the reference fixtures (Tests/Fixtures) and of the optional real
/// model; defined once for every test target.
public enum Fixtures {
    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    public static let root = (repository as NSString).appendingPathComponent("Tests/Fixtures")

    /// `Tests/Fixtures/<parts…>`.
    public static func path(_ parts: String...) -> String {
        parts.reduce(root) { ($0 as NSString).appendingPathComponent($1) }
    }

    /// A path inside the repository (`media/…`, `models/…`).
    public static func repositoryPath(_ relative: String) -> String {
        (repository as NSString).appendingPathComponent(relative)
    }

    public static func json(_ parts: String...) throws -> [String: Any] {
        let p = parts.reduce(root) { ($0 as NSString).appendingPathComponent($1) }
        let data = try XCTUnwrap(FileManager.default.contents(atPath: p), "missing fixture \(p)")
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    public struct MissingModel: Error, CustomStringConvertible {
        public var path: String
        public var description: String { "SmolLM2 GGUF not found at \(path): run `make models` (`make test` fetches it)" }
    }

    /// SmolLM2-135M-Instruct Q4_1, fetched by `make models` (scripts/fetch-smollm2.sh), which
    /// `make test` runs first. Without it the tests that need it fail, saying so: never a skip.
    public static func smolLM2() throws -> String {
        let p = (repository as NSString).appendingPathComponent(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        guard FileManager.default.fileExists(atPath: p) else { throw MissingModel(path: p) }
        return p
    }
}
