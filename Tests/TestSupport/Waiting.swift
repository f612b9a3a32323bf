import Dispatch
import Foundation

/// Waits for an event: `condition` is polled until it holds. The backstop only ends a wait that
/// would otherwise hang (the caller then fails); no test passes or fails by how fast an event
/// comes, so a busy machine makes a test slower, never red.
public enum Wait {
    /// Seconds after which a wait that never saw its event gives up: generous, a failure bound.
    public static let backstop = 120.0

    /// True once `condition` holds; false if it still did not after `backstop` seconds.
    @discardableResult
    public static func until(backstop: Double = Wait.backstop, _ condition: () throws -> Bool) rethrows -> Bool {
        let end = DispatchTime.now().uptimeNanoseconds + UInt64(backstop * 1e9)
        while true {
            if try condition() { return true }
            if DispatchTime.now().uptimeNanoseconds > end { return false }
            usleep(20_000)
        }
    }

    /// The same from a task: sleeps between polls instead of blocking a thread of the cooperative
    /// pool (which the awaited work may need).
    @discardableResult
    public static func suspendingUntil(backstop: Double = Wait.backstop, _ condition: () async throws -> Bool) async rethrows -> Bool {
        let end = DispatchTime.now().uptimeNanoseconds + UInt64(backstop * 1e9)
        while true {
            if try await condition() { return true }
            if DispatchTime.now().uptimeNanoseconds > end { return false }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
    }
}
