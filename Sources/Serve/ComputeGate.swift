import Dispatch
import Foundation

// Concurrency of `serve`
//
// HTTP is served by Hummingbird on NIO's event loops; handlers are Swift tasks. The model's compute
// (decode, encode, prune, prefill, generation) is synchronous and long, so it never runs on the
// cooperative pool nor on an event loop: each request's compute (and each live session) is a task
// preferring `ComputeExecutor`, whose jobs run on threads of its own, so /health, /metrics and
// 429s stay prompt while a model works.
//
// `ComputeGate` admits at most `slots` computations at once (`--parallel`, default 1: one
// generation at a time per loaded model) and lets at most `maxQueue` more wait in FIFO order;
// beyond that a request is refused (429). A waiter whose task is cancelled (its client went away)
// leaves the queue; a running computation's slot is freed when its task ends, and a cancelled task
// stops between frames (FrameAnalysis) and between tokens (the decoder's loop checks
// `Task.isCancelled`).

/// Runs the jobs of tasks that prefer it on threads of its own. Not Dispatch: on Linux the
/// cooperative pool is served by Dispatch's worker threads, and computations blocking those (four
/// live sessions did) starve every HTTP handler.
final class ComputeExecutor: TaskExecutor, @unchecked Sendable {  // the condition guards jobs
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    /// `threads`: as many as computations may run at once (compute slots plus live sessions).
    init(threads: Int) {
        for i in 0..<max(1, threads) {
            let thread = Thread { [unowned self] in self.work() }
            thread.name = "hiprune-compute-\(i)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// FIFO admission to `slots` compute slots with a bounded queue.
actor ComputeGate {
    struct Full: Error {}

    let slots: Int
    let maxQueue: Int
    private(set) var running = 0
    private var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    private var nextID: UInt64 = 0

    init(slots: Int, maxQueue: Int) {
        self.slots = slots
        self.maxQueue = maxQueue
    }

    var waiting: Int { waiters.count }

    /// Takes a slot, waiting in line if all are busy; throws `Full` when the line is full and
    /// `CancellationError` when the task is cancelled while it waits.
    func enter() async throws {
        try Task.checkCancellation()
        if running < slots {
            running += 1
            return
        }
        guard waiters.count < maxQueue else { throw Full() }
        let id = nextID
        nextID += 1
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                waiters.append((id, continuation))
            }
        } onCancel: {
            Task { await self.cancel(id) }
        }
    }

    /// Frees a slot: the first waiter takes it.
    func leave() {
        if waiters.isEmpty {
            running -= 1
        } else {
            waiters.removeFirst().continuation.resume()
        }
    }

    private func cancel(_ id: UInt64) {
        guard let i = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: i).continuation.resume(throwing: CancellationError())
    }
}

/// Cancels a request's work when its client goes away; the callback may fire before the work
/// exists, so work attached later is cancelled at once.
final class Cancellation: @unchecked Sendable {  // the lock guards every field
    private let lock = NSLock()
    private var cancels: [@Sendable () -> Void] = []
    private var cancelled = false
    private var armed = true

    /// Ignores later calls to `cancel` (a streamed answer watches its writes instead).
    func disarm() { lock.withLock { armed = false } }

    func attach(_ cancel: @escaping @Sendable () -> Void) {
        let now = lock.withLock { () -> Bool in
            cancels.append(cancel)
            return cancelled
        }
        if now { cancel() }
    }

    func cancel() {
        let all = lock.withLock { () -> [@Sendable () -> Void] in
            guard armed else { return [] }
            cancelled = true
            return cancels
        }
        all.forEach { $0() }
    }
}
