import Console
import ArgumentParser
import Foundation
import Stream

/// `hiprune-video probe`: the facts of an input's best video stream.
struct ProbeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Print the facts of an input's video stream (size, rotation, duration, rate, codec, frames).")

    @Argument(help: "A file, '-' for stdin, or a URL FFmpeg can read.")
    var input: String

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() async throws {
        let info = try VideoSourceInfo.probe(input)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            Console.line(String(decoding: try encoder.encode(info), as: UTF8.self))
            return
        }
        func text(_ value: Double?) -> String { value.map { String(format: "%.6f", $0) } ?? "unknown" }
        Console.line("input: \(info.input)")
        Console.line("format: \(info.format)")
        Console.line("codec: \(info.codec)")
        Console.line("size: \(info.width)x\(info.height)")
        Console.line("rotation: \(info.rotation)")
        Console.line("duration: \(text(info.duration))")
        Console.line("frame rate: \(text(info.frameRate))")
        Console.line("frames: \(info.frameCount.map(String.init) ?? "unknown")")
        Console.line("start: \(text(info.startTime))")
    }
}
