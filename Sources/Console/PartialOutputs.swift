// Files and directories under construction, removed when the run ends early.
//
// An output is built under a partial name beside its destination and renamed into place when it is
// complete. The partial name is a function of the destination alone (`.NAME.partial`), so an
// earlier run killed too hard to clean up (SIGKILL, power loss) leaves at most one partial per
// destination, which the next run to that destination replaces: partials never pile up. A run holds
// an exclusive lock (flock) on its partial while it builds it, so a second run writing the same
// destination at once is refused with one line instead of replacing or interleaving with the
// first's partial; a partial nobody holds is an earlier run's leftover and is replaced. The kernel
// drops the lock when its process ends, however it ends.
//
// While something is registered here, SIGINT and SIGTERM remove it (or run its own interrupt action,
// which may finish it: see `onInterrupt`) and end the process with status 128 + the signal, as a shell
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
        /// The claimed partial's locked descriptor (closed, releasing the lock, when forgotten).
        var lock: Int32 = -1
        /// A directory made for this output, removed with it when it is still empty.
        var emptyParent: String?

        func removeAll() {
            PartialOutputs.remove(path)
            if let emptyParent { rmdir(emptyParent) }
        }

        func release() { if lock >= 0 { close(lock) } }
    }

    /// Why an output's partial could not be claimed.
    public enum ClaimError: Error, CustomStringConvertible {
        /// Another live run is building the same destination.
        case busy(destination: String, partial: String)
        case cannotCreate(destination: String, partial: String, cause: String)

        /// What went wrong, without the destination (for errors that name it themselves).
        public var cause: String {
            switch self {
            case let .busy(_, partial):
                return "another run is writing it (its partial \((partial as NSString).lastPathComponent) is in use)"
            case let .cannotCreate(_, partial, cause):
                return "cannot create \((partial as NSString).lastPathComponent) beside it: \(cause)"
            }
        }

        public var description: String {
            switch self {
            case let .busy(destination, _), let .cannotCreate(destination, _, _): return "\(destination): \(cause)"
            }
        }
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

    /// Makes `partial` (an empty file, or a directory with `directory`), the partial of
    /// `destination`, exclusively for this run and registers it: a partial an earlier run left is
    /// replaced, one that a live run holds is refused (`ClaimError.busy`). `emptyParent`: a directory this run
    /// made for the output, removed with the partial while it is still empty.
    public static func claim(_ partial: String, of destination: String, directory: Bool = false,
                             emptyParent: String? = nil) throws(ClaimError) -> Token {
        for _ in 0..<3 {
            let made = directory ? mkdir(partial, 0o755) : open(partial, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if made < 0 {
                guard errno == EEXIST else {
                    throw ClaimError.cannotCreate(destination: destination, partial: partial, cause: String(cString: strerror(errno)))
                }
                // Somebody's partial: a live run's (locked) is refused, a leftover replaced.
                let existing = open(partial, O_RDONLY | O_CLOEXEC)
                if existing >= 0 {
                    defer { close(existing) }
                    if flock(existing, LOCK_EX | LOCK_NB) != 0 { throw ClaimError.busy(destination: destination, partial: partial) }
                }
                remove(partial)
                continue
            }
            let fd = directory ? open(partial, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : made
            guard fd >= 0, flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                if fd >= 0 { close(fd) }
                throw ClaimError.busy(destination: destination, partial: partial)  // another run got it first
            }
            return state.lock.withLock {
                installHandlers()
                state.next += 1
                state.entries[state.next] = Entry(path: partial, onInterrupt: nil, lock: fd, emptyParent: emptyParent)
                return Token(id: state.next)
            }
        }
        throw ClaimError.busy(destination: destination, partial: partial)
    }

    /// Sets what SIGINT/SIGTERM do with a registered output instead of removing it (it may finish
    /// the output from what it has); it must be safe to call from another thread.
    public static func onInterrupt(_ token: Token, _ action: @escaping @Sendable () -> Void) {
        state.lock.withLock { state.entries[token.id]?.onInterrupt = action }
    }

    /// Runs `body`, a write into a registered partial directory, so that SIGINT/SIGTERM cannot
    /// remove the directory in the middle of it (a write's temporary file would land in the tree
    /// being removed): the interrupt waits for the write in flight, and no write starts after it.
    /// `body` must not register, finish or discard outputs, nor end the process.
    public static func writing<T>(_ body: () throws -> T) rethrows -> T {
        state.lock.lock()
        defer { state.lock.unlock() }
        return try body()
    }

    /// The output is complete (renamed into place) or was removed by its owner: forget it.
    public static func done(_ token: Token) {
        state.lock.withLock { state.entries.removeValue(forKey: token.id) }?.release()
    }

    /// Removes the output now and forgets it.
    public static func discard(_ token: Token) {
        let entry = state.lock.withLock { state.entries.removeValue(forKey: token.id) }
        entry?.removeAll()
        entry?.release()
    }

    /// Removes every registered output (the process is about to end). Later registrations are
    /// refused by holding the lock to the end.
    public static func removeAll() {
        state.lock.lock()
        state.ending = true
        for entry in state.entries.values { entry.removeAll() }
        state.entries = [:]
        // The lock stays held: nothing registers or commits while the process ends.
    }

    private static func interrupted(_ number: Int32) -> Never {
        state.lock.lock()
        for entry in state.entries.values {
            if let action = entry.onInterrupt { action() } else { entry.removeAll() }
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

    /// Removes a file or a directory tree. A writer on another thread may still be adding files to
    /// a directory (the interrupt arrives while it works): the directory is first renamed aside, so
    /// that its next file fails to open instead of landing in a tree being removed; a file the
    /// writer had already opened there is caught by the retries.
    fileprivate static func remove(_ path: String) {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: path, isDirectory: &isDirectory) else { return }
        var target = path
        if isDirectory.boolValue {
            let aside = path + ".removing"
            if rename(path, aside) == 0 { target = aside }
        }
        for _ in 0..<50 {
            guard manager.fileExists(atPath: target) else { return }
            if (try? manager.removeItem(atPath: target)) != nil { return }
            usleep(2_000)
        }
    }
}
