import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Loopback UDP ports for the listeners the tests start (`live`, `serve`'s live sessions,
/// LiveFrames). A port is known free only while a socket holds it, and the listener must bind it
/// itself; so the test holds the port until it starts the listener, then waits for the event that
/// matters — a socket of the listener's own process bound to that port — before anything is sent.
/// A listener that found the port taken in between (EADDRINUSE) is discarded and a new port tried.
public enum LoopbackUDP {
    public struct NoPort: Error, CustomStringConvertible {
        public var description: String
    }

    /// A port no socket is bound to on any address, and the socket holding it (close it to hand over).
    public static func reserve() throws -> (socket: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw NoPort(description: "socket(): \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = INADDR_ANY
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(fd, raw, length) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard bound else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw NoPort(description: "bind(0): \(reason)")
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Socket inodes of `pid`'s open descriptors.
    static func socketInodes(of pid: pid_t) -> Set<String> {
        let folder = "/proc/\(pid)/fd"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        var inodes = Set<String>()
        for name in names {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: folder + "/" + name),
                  target.hasPrefix("socket:[") else { continue }
            inodes.insert(String(target.dropFirst(8).dropLast()))
        }
        return inodes
    }

    /// True when a UDP socket of process `pid` is bound to `port` (on any local address).
    public static func isBound(_ port: Int, by pid: pid_t) -> Bool {
        let hex = String(format: ":%04X", port)
        var inodes: [String] = []
        for table in ["/proc/net/udp", "/proc/net/udp6"] {
            guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 9, fields[1].hasSuffix(hex) else { continue }
                inodes.append(String(fields[9]))
            }
        }
        guard !inodes.isEmpty else { return false }
        return !socketInodes(of: pid).isDisjoint(with: inodes)
    }

    /// Starts a listener on a fresh port and returns it once its process (`pid`) has bound the
    /// port. `failed` says the listener gave up on the port (EADDRINUSE, say): it is `discard`ed and
    /// another port tried, up to `attempts` times.
    public static func listen<Listener>(attempts: Int = 3, backstop: Double = Wait.backstop,
                                        start: (Int) throws -> Listener, pid: (Listener) -> pid_t,
                                        failed: (Listener) -> Bool, discard: (Listener) -> Void) throws -> (Listener, Int) {
        var notes: [String] = []
        for _ in 0..<attempts {
            let (held, port) = try reserve()
            close(held)  // handed over: the listener binds it next
            let listener = try start(port)
            var bound = false
            Wait.until(backstop: backstop) {
                bound = isBound(port, by: pid(listener))
                return bound || failed(listener)
            }
            if bound { return (listener, port) }
            notes.append("port \(port)")
            discard(listener)
        }
        throw NoPort(description: "no listener bound a loopback UDP port (tried \(notes.joined(separator: ", ")))")
    }
}
