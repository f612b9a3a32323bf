import Foundation
import TestSupport
import XCTest

/// `stats`/`encode --inputs LIST --shard I/N`: workers split a list without coordination and
/// their outputs concatenate to the unsharded run's.
final class ShardCLITests: XCTestCase {
    let model = CLI.path("models/demo-smolvlm2")

    func list() throws -> String {
        let file = try temporaryDirectory("shard").appendingPathComponent("inputs.txt")
        let inputs = ["media/bigbuckbunny.mp4", "# a comment", "", "media/aspect-4x3.mp4", "media/still.png"].map {
            $0.hasPrefix("media/") ? CLI.path($0) : $0
        }
        try inputs.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    /// JSONL lines without their timings (which differ run to run).
    func lines(_ text: String) -> [String] {
        CLI.events(text).map { object in
            var o = object
            o["encode_ms"] = nil
            o["prune_ms"] = nil
            return (try? String(decoding: JSONSerialization.data(withJSONObject: o, options: .sortedKeys), as: UTF8.self)) ?? ""
        }
    }

    func testStatsShardsConcatenateToTheWholeList() throws {
        let list = try list()
        let common = ["stats", "--inputs", list, "--model", model, "--frames", "2", "--format", "jsonl"]
        let whole = try CLI.run(common)
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let shard0 = try CLI.run(common + ["--shard", "0/2"]), shard1 = try CLI.run(common + ["--shard", "1/2"])
        XCTAssertEqual(shard0.status, 0, shard0.stderr)
        XCTAssertEqual(shard1.status, 0, shard1.stderr)
        let inputs0 = Set(CLI.events(shard0.stdout).compactMap { $0["input"] as? String })
        XCTAssertEqual(inputs0, [CLI.path("media/bigbuckbunny.mp4"), CLI.path("media/still.png")], "inputs 0 and 2 of the list")
        XCTAssertEqual(Set(CLI.events(shard1.stdout).compactMap { $0["input"] as? String }), [CLI.path("media/aspect-4x3.mp4")])
        XCTAssertEqual((lines(shard0.stdout) + lines(shard1.stdout)).sorted(), lines(whole.stdout).sorted())
        XCTAssertEqual(CLI.events(whole.stdout).filter { $0["summary"] as? Bool == true }.count, 3, "one summary per input")

        let bad = try CLI.run(common + ["--shard", "2/2"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--shard"), bad.stderr)
        XCTAssertEqual(bad.stdout, "")
    }

    func testEncodeShardWritesOneFilePerInput() throws {
        let list = try list()
        let out = try temporaryDirectory("shard-out")
        let result = try CLI.run(["encode", model, "--inputs", list, "--shard", "1/2", "--frames", "2", "--layers", "1",
                                  "--out", out.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let events = CLI.events(result.stdout)
        XCTAssertEqual(events.compactMap { $0["index"] as? Int }, [1])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path), ["000001-aspect-4x3.safetensors"])
        XCTAssertEqual(events.first?["frames"] as? Int, 2)
    }
}
