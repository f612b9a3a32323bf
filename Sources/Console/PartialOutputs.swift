// Files and directories under construction, removed when the run ends early.
//
// An output is built under a partial name beside its destination and renamed into place when it is
// complete. The partial name is a function of the destination alone (`.NAME.partial`), so an
// earlier run killed too hard to clean up (SIGKILL, power loss) leaves at most one partial per
// destination, which the next run to that destination replaces: partials never pile up. (Two runs
// writing the same destination at once would race for the destination anyway.)
//
// While something is registered here, SIGINT and SIGTERM remove it (or run its own interrupt action,
// which may finish it: see `register`) and end the process with status 128 + the signal, as a shell
// reports a process killed by it. Console removes them too before it ends the process on a failed
// write.
import Dispatch
import Foundation

public enum PartialOutputs {
    /// Handle of one registered output.
    public struct Token: Sendable, Hashable { fileprivate let id: Int }

    private struct Entry {
        var path: String
        var onInterrupt: (@Sendable () -> Void)?
    }

    private final class State: @unchecked Sendable {  // guarded by lock
        let lock = NSLock()
        var entries: [Int: Entry] = [:]
        var next = 0
        var sources: [DispatchSourceSignal] = []
        var ending = false
    }

    private static let state = State()

    /// The partial name of `destination`: a hidden sibling, the same on every run.
    public static func partialPath(for destination: String) -> String {
        let url = URL(fileURLWithPath: destination.count > 1 && destination.hasSuffix("/") ? String(destination.dropLast()) : destination)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial").path
    }

    /// Registers `path` as under construction, first removing what an earlier run left there
    /// (unless `removingStale` is false: the caller has just made it, replacing any stale one).
    /// `onInterrupt`, if given, runs on SIGINT/SIGTERM instead of removing the path (it may finish
    /// the output from what it has); it must be safe to call from another thread.
    @discardableResult
    public static func register(_ path: String, removingStale: Bool = true, onInterrupt: (@Sendable () -> Void)? = nil) -> Token {
        if removingStale { remove(path) }
        return state.lock.withLock {
            installHandlers()
            state.next += 1
            state.entries[state.next] = Entry(path: path, onInterrupt: onInterrupt)
            return Token(id: state.next)
        }
    }

    /// The output is complete (renamed into place) or was removed by its owner: forget it.
    public static func done(_ token: Token) {
        state.lock.withLock { _ = state.entries.removeValue(forKey: token.id) }
    }

    /// Removes the output now and forgets it.
    public static func discard(_ token: Token) {
        let entry = state.lock.withLock { state.entries.removeValue(forKey: token.id) }
        if let entry { remove(entry.path) }
    }

    /// Removes every registered output (the process is about to end). Later registrations are
    /// refused by holding the lock to the end.
    public static func removeAll() {
        state.lock.lock()
        state.ending = true
        for entry in state.entries.values { remove(entry.path) }
        state.entries = [:]
        // The lock stays held: nothing registers or commits while the process ends.
    }

    private static func interrupted(_ number: Int32) -> Never {
        state.lock.lock()
        for entry in state.entries.values {
            if let action = entry.onInterrupt { action() } else { remove(entry.path) }
        }
        state.entries = [:]
        _exit(128 + number)
    }

    /// Called with the lock held.
    private static func installHandlers() {
        guard state.sources.isEmpty else { return }
        state.sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { interrupted(number) }
            source.resume()
            return source
        }
    }

    /// Removes a file or a directory tree; a writer may still be adding to a directory, so a
    /// failure is retried a few times.
    private static func remove(_ path: String) {
        let manager = FileManager.default
        for _ in 0..<5 {
            var isDirectory: ObjCBool = false
            guard manager.fileExists(atPath: path, isDirectory: &isDirectory) else { return }
            if (try? manager.removeItem(atPath: path)) != nil { return }
            usleep(2_000)
        }
    }
}
