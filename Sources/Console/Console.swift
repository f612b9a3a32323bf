// The one output layer of the command-line tools: every line for stdout or stderr goes through here.
//
// - stdout is written with write(2), unbuffered, so a failure is seen at the line that failed and
//   not at exit (stdio's buffer would hide /dev/full until after the exit status was chosen).
// - A closed pipe (EPIPE) ends the process as Unix tools end: killed by SIGPIPE, nothing printed
//   (`hiprune-video stats … | head -1`). Foundation ignores SIGPIPE, so the signal is re-raised
//   with its default action.
// - Any other failure on stdout (a full disk, EIO) ends the process with one line on stderr and
//   exit status 1.
// - A failure on stderr is ignored: the exit status still tells the truth.
// Outputs under construction (PartialOutputs) are removed before the process ends this way.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum Console {
    /// The program name that starts every error line.
    public nonisolated(unsafe) static var programName = "hiprune-video"

    /// Writes `text` to stdout, or ends the process (see the file's header).
    public static func out(_ text: String) {
        var text = text
        let failure = text.withUTF8 { writeAll(1, $0) }
        guard let failure else { return }
        if failure == EPIPE { closedPipe() }
        PartialOutputs.removeAll()
        err("\(programName): stdout: \(String(cString: strerror(failure)))")
        _exit(1)
    }

    /// One line on stdout.
    public static func line(_ text: String) { out(text + "\n") }

    /// Writes a line (a newline is added unless `newline` is false) to stderr; failures are ignored.
    public static func err(_ text: String, newline: Bool = true) {
        var text = newline ? text + "\n" : text
        _ = text.withUTF8 { writeAll(2, $0) }
    }

    /// Ends the process the way a Unix tool ends on a closed pipe.
    public static func closedPipe() -> Never {
        PartialOutputs.removeAll()
        signal(SIGPIPE, SIG_DFL)
        raise(SIGPIPE)
        _exit(128 + SIGPIPE)
    }

    /// Writes every byte, retrying on EINTR and short writes; the errno of a failure, else nil.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeBufferPointer<UInt8>) -> Int32? {
        guard var p = bytes.baseAddress else { return nil }
        var left = bytes.count
        while left > 0 {
            let n = write(fd, p, left)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if n == 0 { return EIO }
            p += n
            left -= n
        }
        return nil
    }
}
