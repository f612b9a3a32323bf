import Foundation
import XCTest

/// Bad inputs made at test time (small: copies of the bundled demo model with one field changed,
/// bytes written here), each with the commands that read it.
enum HostileCorpus {
    static let model = CLI.path("models/demo-smolvlm2")
    static let clip = CLI.path("media/aspect-4x3.mp4")

    /// Every entry of a directory tree, hidden ones too.
    static func contents(_ url: URL) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: url.path) else { return [] }
        return (walker.allObjects as? [String] ?? []).sorted()
    }

    // MARK: model directories

    /// A copy of the demo model with `edit` applied to one of its JSON files.
    static func model(in root: URL, named name: String, file: String = "config.json",
                      edit: (inout [String: Any]) -> Void) throws -> String {
        let target = root.appendingPathComponent(name)
        try FileManager.default.copyItem(atPath: model, toPath: target.path)
        let url = target.appendingPathComponent(file)
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        return target.path
    }

    /// A copy of the demo model whose model.safetensors is `transform(bytes)`.
    static func model(in root: URL, named name: String, weights transform: (Data) throws -> Data) throws -> String {
        let target = root.appendingPathComponent(name)
        try FileManager.default.copyItem(atPath: model, toPath: target.path)
        let url = target.appendingPathComponent("model.safetensors")
        try transform(Data(contentsOf: url)).write(to: url)
        return target.path
    }

    /// A safetensors file's header as JSON and its data section.
    static func split(_ file: Data) throws -> (header: [String: Any], data: Data) {
        let length = file.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: file.subdata(in: 8..<(8 + length))) as? [String: Any])
        return (header, file.subdata(in: (8 + length)..<file.count))
    }

    /// A safetensors file from a header given as text (to write what JSONSerialization cannot:
    /// duplicate keys, 2^70) and a data section.
    static func join(headerText: String, data: Data) -> Data {
        var text = Data(headerText.utf8)
        while text.count % 8 != 0 { text.append(0x20) }
        var out = Data()
        var length = UInt64(text.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        return out + text + data
    }

    static func headerText(_ header: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]), as: UTF8.self)
    }

    /// The demo model's weights with one tensor's header entry replaced by `entry` (JSON text).
    static func replacing(_ name: String, with entry: @escaping (_ begin: Int, _ end: Int) -> String) -> (Data) throws -> Data {
        { file in
            let (original, data) = try split(file)
            var header = original
            let old = try XCTUnwrap(header[name] as? [String: Any])
            let offsets = try XCTUnwrap(old["data_offsets"] as? [Int])
            header[name] = "@@"
            let text = try headerText(header).replacingOccurrences(of: "\"@@\"", with: entry(offsets[0], offsets[1]))
            return join(headerText: text, data: data)
        }
    }

    /// The name of a tensor of the demo model and its dtype/shape JSON, first in data order.
    static func firstTensor(matching prefix: String) throws -> (name: String, dtype: String, shape: [Int]) {
        let (header, _) = try split(Data(contentsOf: URL(fileURLWithPath: model + "/model.safetensors")))
        let entries = header.compactMap { key, value -> (String, Int, String, [Int])? in
            guard key.hasPrefix(prefix), let v = value as? [String: Any], let o = v["data_offsets"] as? [Int],
                  let d = v["dtype"] as? String, let s = v["shape"] as? [Int] else { return nil }
            return (key, o[0], d, s)
        }.sorted { $0.1 < $1.1 }
        let first = try XCTUnwrap(entries.first)
        return (first.0, first.2, first.3)
    }

    // MARK: video inputs

    /// `seconds` of a 64x48, 10 fps MPEG-2 test pattern as MPEG-TS (made by the ffmpeg CLI).
    static func transportStream(seconds: Int, in folder: URL) throws -> Data {
        let path = folder.appendingPathComponent("clip-\(seconds)s.ts").path
        let ffmpeg = Process()
        ffmpeg.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        ffmpeg.arguments = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10",
                            "-t", String(seconds), "-c:v", "mpeg2video", "-f", "mpegts", path]
        try ffmpeg.run()
        ffmpeg.waitUntilExit()
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    /// A PNG whose header declares `width` × `height` with one tiny IDAT.
    static func png(width: UInt32, height: UInt32) -> Data {
        func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
            let typed = Array(type.utf8) + body
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in typed {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            }
            crc ^= 0xFFFF_FFFF
            return be(UInt32(body.count)) + typed + be(crc)
        }
        func be(_ v: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }
        let header = be(width) + be(height) + [8, 2, 0, 0, 0]
        let idat: [UInt8] = [0x78, 0x9C, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01]
        return Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", header) + chunk("IDAT", idat) + chunk("IEND", []))
    }

    /// An MP4 whose container is whole and whose coded frames are noise.
    static func garbagePayload(_ source: String) throws -> Data {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
        let tag = Array("mdat".utf8)
        let at = try XCTUnwrap((0..<(bytes.count - 4)).first { Array(bytes[$0..<($0 + 4)]) == tag })
        let size = Int(bytes[at - 4]) << 24 | Int(bytes[at - 3]) << 16 | Int(bytes[at - 2]) << 8 | Int(bytes[at - 1])
        var state: UInt32 = 0x2545_F491  // the same noise every run
        for i in (at + 4)..<min(bytes.count, at - 4 + size) {
            state = state &* 1_664_525 &+ 1_013_904_223
            bytes[i] = UInt8(truncatingIfNeeded: state >> 24)
        }
        return Data(bytes)
    }
}
