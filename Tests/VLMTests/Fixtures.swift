import Foundation
import XCTest

/// Paths of the reference fixtures (Tests/Fixtures) and of the optional real model.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    static func path(_ parts: String...) -> String {
        parts.reduce(root) { ($0 as NSString).appendingPathComponent($1) }
    }

    static func json(_ parts: String...) throws -> [String: Any] {
        let p = parts.reduce(root) { ($0 as NSString).appendingPathComponent($1) }
        let data = try XCTUnwrap(FileManager.default.contents(atPath: p), "missing fixture \(p)")
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// SmolLM2-135M-Instruct Q4_1, fetched by scripts/fetch-smollm2.sh; tests that need it skip without it.
    static func smolLM2() throws -> String {
        let p = (repository as NSString).appendingPathComponent(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        guard FileManager.default.fileExists(atPath: p) else {
            throw XCTSkip("SmolLM2 GGUF not found at \(p); run scripts/fetch-smollm2.sh")
        }
        return p
    }
}
