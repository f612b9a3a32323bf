import ArgumentParser
import Foundation
import Stream

/// `hiprune-bench decode`: decode + scale to 384×384 RGB through `VideoFrames`, beside the ffmpeg CLI
/// doing the same work on the same file in the same invocation.
struct DecodeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Frames/s decoding + scaling to 384x384 RGB (median of runs): VideoFrames vs `ffmpeg -benchmark`.")

    @Option(help: "Timed runs per clip and side (median reported); at least 3.")
    var runs = 5

    @Option(help: "The real clip.")
    var clip = "media/bigbuckbunny.mp4"

    @Option(help: "Length in seconds of the synthetic 720p H.264 clip made at bench time.")
    var seconds = 10

    @Option(help: "The ffmpeg CLI (the peer, and the maker of the synthetic clip).")
    var ffmpeg = "ffmpeg"

    @Option(help: "Decoder and scaler threads for VideoFrames; 0 = FFmpeg's auto (one per core), as the CLI uses.")
    var threads = 0

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// One timed pass: frames, wall seconds, and CPU seconds (user + system) where known.
    struct Pass {
        var frames: Int
        var wall: Double
        var cpu: Double
    }

    func run() async throws {
        guard runs >= 3 else { throw ValidationError("--runs must be at least 3") }
        guard seconds >= 1 else { throw ValidationError("--seconds must be at least 1") }
        guard FileManager.default.fileExists(atPath: clip) else { throw Failure(description: "\(clip): no such file") }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hiprune-decode-bench-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let synthetic = directory.appendingPathComponent("testsrc2-720p.mp4").path
        let made = try shell(ffmpeg, ["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                                      "-i", "testsrc2=size=1280x720:rate=30", "-t", String(seconds),
                                      "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", synthetic])
        guard made.status == 0 else { throw Failure(description: "\(synthetic): ffmpeg could not make the synthetic clip: \(made.stderr)") }

        print("decode + scale to 384x384 RGB24 (bicubic), every frame, median of \(runs) runs after one warm-up")
        print("peer: \(ffmpeg) -benchmark -i FILE -an -vf scale=384:384 -pix_fmt rgb24 -f null -  (audio off: we decode video only)")
        print("clip                 frames  ours f/s  open s  ours-open f/s  cpu s  | ffmpeg rtime f/s  process f/s  cpu s  | ours/rtime  (ours-open)/rtime  ours/process")
        for file in [clip, synthetic] {
            _ = try await ours(file)
            _ = try peer(file)
            var mine: [Pass] = [], theirsR: [Pass] = [], theirsP: [Pass] = [], opening: [Double] = []
            // Interleaved, so load from other work on the machine hits both sides alike.
            for _ in 0..<runs {
                mine.append(try await ours(file))
                opening.append(try openSeconds(file))
                let p = try peer(file)
                theirsR.append(p.rtime)
                theirsP.append(p.process)
            }
            let framesOurs = mine[0].frames, framesPeer = theirsR[0].frames
            guard framesOurs == framesPeer else {
                throw Failure(description: "\(file): VideoFrames gave \(framesOurs) frames, ffmpeg \(framesPeer)")
            }
            let oursFPS = median(mine.map { Double($0.frames) / $0.wall })
            let rtimeFPS = median(theirsR.map { Double($0.frames) / $0.wall })
            let processFPS = median(theirsP.map { Double($0.frames) / $0.wall })
            let open = median(opening)
            // ffmpeg's rtime starts after it opened the input; this is our figure on the same footing.
            let decodeFPS = median(mine.map { Double($0.frames) / max($0.wall - open, 1e-9) })
            let name = ((file == synthetic ? "testsrc2-720p.mp4" : (file as NSString).lastPathComponent) as String)
                .padding(toLength: 19, withPad: " ", startingAt: 0)
            print(name + String(format: "  %6d  %8.1f  %6.3f  %13.1f  %5.2f  | %16.1f  %11.1f  %5.2f  | %9.2fx  %16.2fx  %11.2fx",
                                framesOurs, oursFPS, open, decodeFPS, median(mine.map(\.cpu)), rtimeFPS, processFPS,
                                median(theirsR.map(\.cpu)), oursFPS / rtimeFPS, decodeFPS / rtimeFPS, oursFPS / processFPS))
        }
        print("ours: wall time of the whole sequence (open + decode + scale + [UInt8] per frame); cpu = getrusage delta")
        print("open: VideoSourceInfo.probe (avformat_open_input + avformat_find_stream_info); ours-open = frames / (wall - open)")
        print("ffmpeg rtime/cpu: its -benchmark clocks (start after it opened the input); process: the process's wall time")
    }

    /// Every frame of `file` through VideoFrames at 384×384 exact.
    func ours(_ file: String) async throws -> Pass {
        let options = DecodeOptions(size: FrameSize(width: 384, height: 384), resize: .exact, threads: threads)
        let cpuBefore = cpuSeconds()
        let clock = ContinuousClock()
        let begin = clock.now
        var frames = 0
        var checksum = 0
        for try await frame in VideoFrames(input: file, options: options) {
            frames += 1
            checksum &+= Int(frame.rgb[frame.rgb.count / 2])  // touch the pixels so nothing is elided
        }
        let elapsed = clock.now - begin
        let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        if checksum < 0 { print("") }
        return Pass(frames: frames, wall: wall, cpu: cpuSeconds() - cpuBefore)
    }

    /// Wall seconds to open `file` and read its stream facts, the part ffmpeg's rtime leaves out.
    func openSeconds(_ file: String) throws -> Double {
        let clock = ContinuousClock()
        let begin = clock.now
        _ = try VideoSourceInfo.probe(file)
        let elapsed = clock.now - begin
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// One run of the ffmpeg CLI on `file`: its `-benchmark` rtime and utime+stime, and the process's wall time.
    func peer(_ file: String) throws -> (rtime: Pass, process: Pass) {
        let clock = ContinuousClock()
        let begin = clock.now
        let result = try shell(ffmpeg, ["-hide_banner", "-nostdin", "-benchmark", "-i", file, "-an",
                                        "-vf", "scale=384:384", "-pix_fmt", "rgb24", "-f", "null", "-"])
        let elapsed = clock.now - begin
        let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        guard result.status == 0 else { throw Failure(description: "\(file): ffmpeg failed: \(result.stderr.suffix(300))") }
        func field(_ name: String) -> Double? {
            // "bench: utime=0.593s stime=0.026s rtime=1.664s"
            guard let range = result.stderr.range(of: name + "=", options: .backwards) else { return nil }
            let rest = result.stderr[range.upperBound...]
            return Double(rest.prefix { $0.isNumber || $0 == "." })
        }
        // The last progress report: "frame=  132 fps= 80 ..." (reports are separated by \r).
        let frames = result.stderr.range(of: "frame=", options: .backwards).flatMap {
            Int(result.stderr[$0.upperBound...].drop { $0 == " " }.prefix { $0.isNumber })
        }
        guard let frames, let rtime = field("rtime"), let utime = field("utime"), let stime = field("stime") else {
            throw Failure(description: "\(file): no frame count or bench: line in ffmpeg's output: \(result.stderr.suffix(300))")
        }
        return (Pass(frames: frames, wall: rtime, cpu: utime + stime), Pass(frames: frames, wall: wall, cpu: utime + stime))
    }

    func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// Runs `program` (looked up on PATH) to completion; stderr captured, stdout discarded.
    func shell(_ program: String, _ arguments: [String]) throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [program] + arguments
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { throw Failure(description: "\(program): cannot start (\(error))") }
        let data = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
