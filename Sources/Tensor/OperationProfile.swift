// Per-operation timers for benchmarks: a model's forward pass takes an optional profile and wraps
// each operation in `profile.time(name) { … }`; without one (every production call) the wrapper
// is a plain call and the name is never built.
import Foundation

public final class OperationProfile {
    public struct Entry: Sendable {
        public var name: String
        /// Wall seconds summed over calls.
        public var seconds: Double = 0
        /// Process CPU seconds summed over calls (every thread's, spinning ones included).
        public var cpuSeconds: Double = 0
        public var calls: Int = 0
        /// Floating-point operations summed over calls (0 for element-wise passes).
        public var flops: Double = 0
    }

    /// Entries in the order first seen.
    public private(set) var entries: [Entry] = []
    private var index: [String: Int] = [:]

    public init() {}

    public func reset() {
        entries = []
        index = [:]
    }

    public func record(_ name: String, seconds: Double, cpuSeconds: Double, flops: Double) {
        let i: Int
        if let known = index[name] {
            i = known
        } else {
            i = entries.count
            index[name] = i
            entries.append(Entry(name: name))
        }
        entries[i].seconds += seconds
        entries[i].cpuSeconds += cpuSeconds
        entries[i].calls += 1
        entries[i].flops += flops
    }

    /// Seconds of CPU time the whole process has used.
    public static func processCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
}

extension Optional where Wrapped == OperationProfile {
    /// Runs `body`, recording its wall and CPU time under `name` when there is a profile.
    @inline(__always)
    public func time<R, E: Error>(_ name: @autoclosure () -> String, flops: @autoclosure () -> Double = 0,
                                  _ body: () throws(E) -> R) throws(E) -> R {
        guard let profile = self else { return try body() }
        return try profile.time(name(), flops: flops(), body)
    }
}

extension OperationProfile {
    /// Runs `body`, recording its wall and CPU time under `name`.
    public func time<R, E: Error>(_ name: String, flops: Double = 0, _ body: () throws(E) -> R) throws(E) -> R {
        let cpu = Self.processCPUSeconds(), start = DispatchTime.now().uptimeNanoseconds
        let result = try body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        record(name, seconds: seconds, cpuSeconds: Self.processCPUSeconds() - cpu, flops: flops)
        return result
    }
}
