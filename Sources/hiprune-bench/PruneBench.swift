import ArgumentParser
import Foundation
import Prune

/// `hiprune-bench prune`: time per frame of the selection policies, beside the numpy reference.
struct PruneBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Prune time per frame (median) at 64, 1024 and 4096 tokens: hiprune, hiprune++, dedup; numpy peer.")

    @Option(help: "Timed runs per case (median reported).")
    var runs = 500

    @Option(help: "Feature width for hiprune++ and dedup (the connector's output width).")
    var width = 960

    @Option(help: "Python for the numpy peer (tools/prune_reference.py --bench); skipped if it does not exist.")
    var python = Peer.defaultPython

    @Option(help: "The peer script.")
    var reference = "tools/prune_reference.py"

    func run() async throws {
        guard runs >= 1, width >= 1 else { throw ValidationError("--runs and --width must be at least 1") }
        var random = SplitMix64(seed: 7)
        func unit() -> Float { Float(random.next() >> 40) / Float(1 << 24) }
        let hiPrune = try HiPrune()
        let plus = try HiPrunePlusPlus(hiPrune: hiPrune)
        var ours: [Int: [String: Double]] = [:]
        var checksum = 0
        for side in [8, 32, 64] {
            let grid = TokenGrid(rows: side, cols: side)
            let n = grid.count
            let budget = Budget.count((n + 1) / 3)
            let object = (0..<n).map { _ in unit() }, deep = (0..<n).map { _ in unit() }
            let features = (0..<(n * width)).map { _ in unit() - 0.5 }
            let moved = features.map { $0 + 0.1 * (unit() - 0.5) }
            let prompt = (0..<width).map { _ in unit() - 0.5 }
            var dedup = try TemporalDeduplicator(threshold: 0.95)
            _ = try dedup.candidates(features: moved, width: width, grid: grid)
            var flip = false
            ours[n] = [
                "hiprune": try medianMicroseconds(runs) {
                    checksum &+= try hiPrune.select(objectScores: object, deepScores: deep, grid: grid, budget: budget).count
                },
                "hiprune++": try medianMicroseconds(runs) {
                    checksum &+= try plus.select(objectScores: object, deepScores: deep, features: features, width: width,
                                                 promptEmbedding: prompt, grid: grid, budget: budget).count
                },
                // Alternating frames, so every call compares against a different previous frame.
                "dedup": try medianMicroseconds(runs) {
                    flip.toggle()
                    checksum &+= try dedup.candidates(features: flip ? features : moved, width: width, grid: grid)
                        .reduce(0) { $0 + ($1 ? 1 : 0) }
                },
            ]
        }
        let peer = numpyPeer()
        print("prune time per frame, median of \(runs) runs, budget N/3, feature width \(width), one thread each")
        print("tokens  method      swift µs    numpy µs   numpy/swift")
        for n in [64, 1024, 4096] {
            for method in ["hiprune", "hiprune++", "dedup"] {
                let swift = ours[n]?[method] ?? .nan
                let numpy = peer?[String(n)]?[method]
                let peerText = numpy.map { String(format: "%10.1f   %8.2fx", $0, $0 / swift) } ?? "         -           -"
                let name = method.padding(toLength: 9, withPad: " ", startingAt: 0)
                print(String(format: "%6d  ", n) + name + String(format: " %10.1f  ", swift) + peerText)
            }
        }
        if peer == nil { print("numpy peer skipped: \(python) not found or \(reference) failed") }
        print("checksum \(checksum)")
    }

    /// Median wall time of `body` in microseconds over `runs` runs, after a few warm-up runs.
    func medianMicroseconds(_ runs: Int, _ body: () throws -> Void) throws -> Double {
        for _ in 0..<min(10, runs) { try body() }
        let clock = ContinuousClock()
        var samples: [Double] = []
        samples.reserveCapacity(runs)
        for _ in 0..<runs {
            let elapsed = try clock.measure(body)
            samples.append(Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6)
        }
        samples.sort()
        return samples[samples.count / 2]
    }

    /// The peer's medians, `{tokens: {method: µs}}`, or nil when it cannot run.
    func numpyPeer() -> [String: [String: Double]]? {
        // One thread, like the Swift side: a fair per-frame cost, and no fight over shared cores.
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        environment["OMP_NUM_THREADS"] = "1"
        guard let data = Peer.run(python, [reference, "--bench", "--runs", String(runs), "--width", String(width)],
                                  environment: environment) else { return nil }
        return try? JSONDecoder().decode([String: [String: Double]].self, from: data)
    }
}
