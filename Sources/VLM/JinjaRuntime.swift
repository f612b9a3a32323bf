// Evaluating a parsed chat template: jinja2's scoping (a for loop's body is a scope of its own, so
// `set` inside it does not leak out — which is why templates count with namespace()), its
// `loop` variable, loop controls (break/continue), and the filters, tests, globals and Python
// methods shipped templates call. Lookups of missing keys give `undefined`, as jinja2's default
// Undefined does; attribute access on `undefined` is an error, as it is there.
import Foundation

struct JinjaRuntime {
    /// Globals callable by name.
    static let functions: Set<String> = ["raise_exception", "namespace", "range", "dict", "strftime_now"]

    private var scopes: [[String: JinjaValue]]
    /// The instant strftime_now() formats (in local time, as Python's datetime.now() is).
    private let now: time_t
    private var output = ""
    private var line = 0
    /// `{% macro %}` definitions by name (a macro's name evaluates to `.function(name)`).
    private var macros: [String: (parameters: [(String, JinjaExpr?)], body: [JinjaNode])] = [:]

    enum Flow { case normal, breakLoop, continueLoop }

    /// A failure with the template line it happened at.
    struct Failure: Error {
        var line: Int
        var message: String
        /// raise_exception's message (the template refused the conversation).
        var raised: Bool
    }

    init(variables: [String: JinjaValue], now: time_t) {
        scopes = [variables]
        self.now = now
    }

    static func render(_ nodes: [JinjaNode], variables: [String: JinjaValue], now: time_t = time(nil)) throws(Failure) -> String {
        var runtime = JinjaRuntime(variables: variables, now: now)
        _ = try runtime.run(nodes)
        return runtime.output
    }

    private func fail(_ message: String) -> Failure { Failure(line: line, message: message, raised: false) }

    private mutating func run(_ nodes: [JinjaNode]) throws(Failure) -> Flow {
        for node in nodes {
            switch node {
            case let .text(t): output += t
            case let .output(expr, l):
                line = l
                output += try evaluate(expr).text
            case let .branches(branches, otherwise, l):
                line = l
                var chosen = otherwise
                for (condition, body) in branches {
                    if try evaluate(condition).isTruthy {
                        chosen = body
                        break
                    }
                }
                let flow = try run(chosen)
                if flow != .normal { return flow }
            case let .forLoop(targets, iterable, condition, body, otherwise, l):
                line = l
                try loop(targets: targets, iterable: iterable, condition: condition, body: body, otherwise: otherwise)
            case let .set(targets, expr, l):
                line = l
                let value = try evaluate(expr)
                if targets.count == 1 {
                    scopes[scopes.count - 1][targets[0]] = value
                } else {
                    let items = try iterate(value)
                    guard items.count == targets.count else { throw fail("cannot unpack \(items.count) values into \(targets.count) names") }
                    for (t, v) in zip(targets, items) { scopes[scopes.count - 1][t] = v }
                }
            case let .setAttribute(name, attribute, expr, l):
                line = l
                let value = try evaluate(expr)
                guard let depth = scopes.lastIndex(where: { $0[name] != nil }), case var .namespace(ns)? = scopes[depth][name] else {
                    throw fail("cannot assign attribute '\(attribute)' of '\(name)', which is not a namespace")
                }
                ns[attribute] = value
                scopes[depth][name] = .namespace(ns)
            case let .setBlock(name, body):
                let saved = output
                output = ""
                _ = try run(body)
                scopes[scopes.count - 1][name] = .string(output)
                output = saved
            case let .macro(name, parameters, body, l):
                line = l
                macros[name] = (parameters, body)
                scopes[scopes.count - 1][name] = .function(name)
            case let .breakLoop(l):
                line = l
                return .breakLoop
            case let .continueLoop(l):
                line = l
                return .continueLoop
            }
        }
        return .normal
    }

    private mutating func loop(targets: [String], iterable: JinjaExpr, condition: JinjaExpr?, body: [JinjaNode],
                               otherwise: [JinjaNode]) throws(Failure) {
        let all = try iterate(try evaluate(iterable))
        var items: [JinjaValue] = []
        if let condition {
            // The filter sees the loop variable but not `loop` (jinja2 filters before counting).
            for item in all {
                scopes.append([:])
                try bind(targets, item)
                let keep = try evaluate(condition).isTruthy
                scopes.removeLast()
                if keep { items.append(item) }
            }
        } else {
            items = all
        }
        if items.isEmpty {
            _ = try run(otherwise)
            return
        }
        for (k, item) in items.enumerated() {
            let n = items.count
            let info = JinjaObject([
                ("index", .int(k + 1)), ("index0", .int(k)), ("revindex", .int(n - k)), ("revindex0", .int(n - k - 1)),
                ("first", .bool(k == 0)), ("last", .bool(k == n - 1)), ("length", .int(n)),
                ("previtem", k > 0 ? items[k - 1] : .undefined), ("nextitem", k + 1 < n ? items[k + 1] : .undefined),
            ])
            scopes.append(["loop": .object(info)])
            try bind(targets, item)
            let flow = try run(body)
            scopes.removeLast()
            if flow == .breakLoop { break }
        }
    }

    private mutating func bind(_ targets: [String], _ item: JinjaValue) throws(Failure) {
        if targets.count == 1 {
            scopes[scopes.count - 1][targets[0]] = item
            return
        }
        let parts = try iterate(item)
        guard parts.count == targets.count else { throw fail("cannot unpack \(parts.count) values into \(targets.count) loop variables") }
        for (t, v) in zip(targets, parts) { scopes[scopes.count - 1][t] = v }
    }

    private func lookup(_ name: String) -> JinjaValue {
        for scope in scopes.reversed() {
            if let v = scope[name] { return v }
        }
        return Self.functions.contains(name) ? .function(name) : .undefined
    }

    private func iterate(_ value: JinjaValue) throws(Failure) -> [JinjaValue] {
        switch value {
        case .undefined: return []
        case let .array(a): return a
        case let .object(o): return o.keys.map { .string($0) }
        case let .string(s): return s.map { .string(String($0)) }
        default: throw fail("'\(value.typeName)' object is not iterable")
        }
    }

    // MARK: expressions

    private mutating func evaluate(_ expr: JinjaExpr) throws(Failure) -> JinjaValue {
        switch expr {
        case let .literal(v): return v
        case let .name(n): return lookup(n)
        case let .list(items):
            var out: [JinjaValue] = []
            for item in items { out.append(try evaluate(item)) }
            return .array(out)
        case let .dict(pairs):
            var o = JinjaObject()
            for (k, v) in pairs {
                guard case let .string(key) = try evaluate(k) else { throw fail("dictionary keys must be strings here") }
                o[key] = try evaluate(v)
            }
            return .object(o)
        case let .attribute(base, name):
            return try attribute(try evaluate(base), name)
        case let .item(base, index):
            return try item(try evaluate(base), try evaluate(index))
        case let .slice(base, start, stop, step):
            let b = try evaluate(base)
            return try slice(b, try start.map { e throws(Failure) in try evaluate(e) }, try stop.map { e throws(Failure) in try evaluate(e) },
                             try step.map { e throws(Failure) in try evaluate(e) })
        case let .call(callee, args, kwargs):
            var a: [JinjaValue] = [], kw: [String: JinjaValue] = [:]
            for arg in args { a.append(try evaluate(arg)) }
            for (k, v) in kwargs { kw[k] = try evaluate(v) }
            switch callee {
            case let .attribute(base, method):
                let receiver = try evaluate(base)
                if case let .object(o) = receiver, o[method] != nil { throw fail("'\(method)' of a dict is not callable") }
                return try call(method: method, on: receiver, a, kw)
            default:
                guard case let .function(name) = try evaluate(callee) else {
                    throw fail("only methods, macros and the globals \(Self.functions.sorted().joined(separator: ", ")) can be called")
                }
                if let macro = macros[name] { return try call(macro: name, macro.parameters, macro.body, a, kw) }
                return try call(function: name, a, kw)
            }
        case let .filter(base, name, args, kwargs):
            let value = try evaluate(base)
            var a: [JinjaValue] = [], kw: [String: JinjaValue] = [:]
            for arg in args { a.append(try evaluate(arg)) }
            for (k, v) in kwargs { kw[k] = try evaluate(v) }
            return try filter(name, value, a, kw)
        case let .test(base, name, args, negated):
            let value = try evaluate(base)
            var a: [JinjaValue] = []
            for arg in args { a.append(try evaluate(arg)) }
            return .bool(try test(name, value, a) != negated)
        case let .not(e): return .bool(!(try evaluate(e).isTruthy))
        case let .negate(e):
            switch try evaluate(e) {
            case let .int(i): return .int(-i)
            case let .double(d): return .double(-d)
            case let .bool(b): return .int(b ? -1 : 0)
            case let v: throw fail("bad operand type for unary -: '\(v.typeName)'")
            }
        case let .and(l, r):
            let left = try evaluate(l)
            return left.isTruthy ? try evaluate(r) : left
        case let .or(l, r):
            let left = try evaluate(l)
            return left.isTruthy ? left : try evaluate(r)
        case let .conditional(value, condition, otherwise):
            if try evaluate(condition).isTruthy { return try evaluate(value) }
            return try otherwise.map { e throws(Failure) in try evaluate(e) } ?? .undefined
        case let .binary(op, l, r):
            return try binary(op, try evaluate(l), try evaluate(r))
        }
    }

    private func binary(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws(Failure) -> JinjaValue {
        switch op {
        case "==": return .bool(JinjaValue.equal(a, b))
        case "!=": return .bool(!JinjaValue.equal(a, b))
        case "<", ">", "<=", ">=":
            let order: Int
            if let x = a.number, let y = b.number { order = x < y ? -1 : x > y ? 1 : 0 } else if case let .string(x) = a, case let .string(y) = b {
                let xs = Array(x.unicodeScalars).map(\.value), ys = Array(y.unicodeScalars).map(\.value)
                order = xs == ys ? 0 : xs.lexicographicallyPrecedes(ys) ? -1 : 1
            } else {
                throw fail("'\(op)' not supported between '\(a.typeName)' and '\(b.typeName)'")
            }
            switch op {
            case "<": return .bool(order < 0)
            case ">": return .bool(order > 0)
            case "<=": return .bool(order <= 0)
            default: return .bool(order >= 0)
            }
        case "in": return .bool(try contains(b, a))
        case "~": return .string(a.text + b.text)
        case "+":
            switch (a, b) {
            case let (.string(x), .string(y)): return .string(x + y)
            case let (.array(x), .array(y)): return .array(x + y)
            default: break
            }
        case "*":
            // Sequence repetition, either way round (3 * 'ab' as 'ab' * 3).
            for (sequence, count) in [(a, b), (b, a)] {
                guard let n = count.integer else { continue }
                if case let .string(s) = sequence {
                    try checkRepetition(s.unicodeScalars.count, n)
                    return .string(String(repeating: s, count: max(0, n)))
                }
                if case let .array(x) = sequence {
                    try checkRepetition(x.count, n)
                    return .array(Array(repeatElement(x, count: max(0, n)).joined()))
                }
            }
        default: break
        }
        if case .undefined = a { throw fail("an undefined value used with '\(op)'") }
        if case .undefined = b { throw fail("an undefined value used with '\(op)'") }
        if let x = a.integer, let y = b.integer {
            switch op {
            case "+", "-", "*":
                let (r, overflow) = op == "+" ? x.addingReportingOverflow(y) : op == "-" ? x.subtractingReportingOverflow(y) : x.multipliedReportingOverflow(by: y)
                guard !overflow else { throw fail("integer overflow in '\(op)'") }
                return .int(r)
            case "//", "%":
                guard y != 0 else { throw fail("integer division or modulo by zero") }
                var q = x / y, m = x % y
                if m != 0, (m < 0) != (y < 0) { q -= 1; m += y }   // Python floors
                return .int(op == "//" ? q : m)
            case "/":
                guard y != 0 else { throw fail("division by zero") }
                return .double(Double(x) / Double(y))
            case "**":
                if y >= 0 {
                    if x == 0 || x == 1 { return .int(y == 0 ? 1 : x) }
                    if x == -1 { return .int(y % 2 == 0 ? 1 : -1) }
                    var r = 1   // |x| ≥ 2 overflows within 63 steps
                    for _ in 0..<y {
                        let (p, o) = r.multipliedReportingOverflow(by: x)
                        guard !o else { throw fail("integer overflow in '**'") }
                        r = p
                    }
                    return .int(r)
                }
                guard x != 0 else { throw fail("0 cannot be raised to a negative power") }
                return .double(pow(Double(x), Double(y)))
            default: break
            }
        }
        if let x = a.number, let y = b.number {
            switch op {
            case "+": return .double(x + y)
            case "-": return .double(x - y)
            case "*": return .double(x * y)
            case "/":
                guard y != 0 else { throw fail("division by zero") }
                return .double(x / y)
            case "//":
                guard y != 0 else { throw fail("division by zero") }
                return .double((x / y).rounded(.down))
            case "%":
                guard y != 0 else { throw fail("modulo by zero") }
                return .double(x - y * (x / y).rounded(.down))
            case "**": return .double(pow(x, y))
            default: break
            }
        }
        throw fail("unsupported operand types for \(op): '\(a.typeName)' and '\(b.typeName)'")
    }

    /// Repetition ('ab' * n) is refused past 16 Mi items: a template cannot make the renderer allocate without bound.
    private func checkRepetition(_ length: Int, _ count: Int) throws(Failure) {
        guard count <= 0 || length == 0 || count <= (1 << 24) / length else {
            throw fail("repetition of \(length) items \(count) times exceeds 16 Mi items")
        }
    }

    private func contains(_ container: JinjaValue, _ element: JinjaValue) throws(Failure) -> Bool {
        switch container {
        case let .string(s):
            guard case let .string(e) = element else { throw fail("'in <string>' requires a string on the left, not '\(element.typeName)'") }
            return e.isEmpty || s.contains(e)
        case let .array(a): return a.contains { JinjaValue.equal($0, element) }
        case let .object(o), let .namespace(o):
            guard case let .string(k) = element else { return false }
            return o[k] != nil
        case .undefined: return false   // jinja2's Undefined iterates as empty
        default: throw fail("argument of type '\(container.typeName)' is not iterable")
        }
    }

    private func attribute(_ base: JinjaValue, _ name: String) throws(Failure) -> JinjaValue {
        switch base {
        case .undefined: throw fail("'\(name)' of an undefined value")
        case let .object(o), let .namespace(o): return o[name] ?? .undefined
        default: return .undefined
        }
    }

    private func item(_ base: JinjaValue, _ index: JinjaValue) throws(Failure) -> JinjaValue {
        switch (base, index) {
        case (.undefined, _): throw fail("\(index.repr) of an undefined value")
        case let (.object(o), .string(k)), let (.namespace(o), .string(k)): return o[k] ?? .undefined
        case let (.array(a), i) where i.integer != nil:
            let n = i.integer!
            let k = n < 0 ? a.count + n : n
            return a.indices.contains(k) ? a[k] : .undefined
        case let (.string(s), i) where i.integer != nil:
            let chars = Array(s)
            let n = i.integer!
            let k = n < 0 ? chars.count + n : n
            return chars.indices.contains(k) ? .string(String(chars[k])) : .undefined
        default: return .undefined
        }
    }

    private func slice(_ base: JinjaValue, _ start: JinjaValue?, _ stop: JinjaValue?, _ step: JinjaValue?) throws(Failure) -> JinjaValue {
        func bound(_ v: JinjaValue?) throws(Failure) -> Int? {
            guard let v, v != .none else { return nil }
            guard let i = v.integer else { throw fail("slice indices must be integers or none") }
            return i
        }
        let st = try bound(step) ?? 1
        guard st != 0 else { throw fail("slice step cannot be zero") }
        func indices(_ count: Int) throws(Failure) -> [Int] {
            // Python's slice.indices.
            func clamp(_ v: Int?, _ defaultValue: Int) -> Int {
                guard var v else { return defaultValue }
                if v < 0 { v += count }
                return st > 0 ? min(max(v, 0), count) : min(max(v, -1), count - 1)
            }
            let a = clamp(try bound(start), st > 0 ? 0 : count - 1), b = clamp(try bound(stop), st > 0 ? count : -1)
            return Array(stride(from: a, to: b, by: st))
        }
        switch base {
        case let .array(x): return .array(try indices(x.count).map { x[$0] })
        case let .string(s):
            let chars = Array(s)
            return .string(String(try indices(chars.count).map { chars[$0] }))
        case .undefined: throw fail("a slice of an undefined value")
        default: throw fail("'\(base.typeName)' object is not subscriptable")
        }
    }

    // MARK: globals and methods

    /// A macro renders its body with its arguments over the template's top-level names (not the
    /// caller's loop variables), as jinja2 macros do; defaults are evaluated at the call.
    private mutating func call(macro name: String, _ parameters: [(String, JinjaExpr?)], _ body: [JinjaNode],
                               _ a: [JinjaValue], _ kw: [String: JinjaValue]) throws(Failure) -> JinjaValue {
        guard a.count <= parameters.count else { throw fail("macro '\(name)' takes \(parameters.count) arguments, not \(a.count)") }
        if let unknown = kw.keys.sorted().first(where: { k in !parameters.contains { $0.0 == k } }) {
            throw fail("macro '\(name)' has no parameter '\(unknown)'")
        }
        let savedScopes = scopes, savedOutput = output, savedLine = line
        scopes = [scopes[0], [:]]
        for (k, (parameter, defaultValue)) in parameters.enumerated() {
            let value: JinjaValue
            if k < a.count { value = a[k] } else if let v = kw[parameter] { value = v } else if let defaultValue { value = try evaluate(defaultValue) } else { value = .undefined }
            scopes[1][parameter] = value
        }
        output = ""
        _ = try run(body)
        let rendered = output
        scopes = savedScopes
        output = savedOutput
        line = savedLine
        return .string(rendered)
    }

    private func call(function name: String, _ a: [JinjaValue], _ kw: [String: JinjaValue]) throws(Failure) -> JinjaValue {
        switch name {
        case "raise_exception":
            throw Failure(line: line, message: a.first?.text ?? "", raised: true)
        case "namespace":
            var o = JinjaObject()
            if case let .object(initial)? = a.first { for k in initial.keys { o[k] = initial[k] } }
            for k in kw.keys.sorted() { o[k] = kw[k] }
            return .namespace(o)
        case "dict":
            var o = JinjaObject()
            for k in kw.keys.sorted() { o[k] = kw[k] }
            return .object(o)
        case "range":
            let ints = a.compactMap(\.integer)
            guard ints.count == a.count, (1...3).contains(ints.count) else { throw fail("range() takes 1 to 3 integers") }
            let (from, to, by) = ints.count == 1 ? (0, ints[0], 1) : (ints[0], ints[1], ints.count == 3 ? ints[2] : 1)
            guard by != 0 else { throw fail("range() step must not be zero") }
            guard (to - from) / by <= 1_000_000 else { throw fail("range() of more than a million items") }
            return .array(stride(from: from, to: to, by: by).map { .int($0) })
        case "strftime_now":
            guard case let .string(format)? = a.first else { throw fail("strftime_now() takes a format string") }
            var t = now
            var parts = tm()
            localtime_r(&t, &parts)
            var buffer = [Int8](repeating: 0, count: 256)
            let n = strftime(&buffer, buffer.count, format, &parts)
            return .string(String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))
        default:
            throw fail("'\(name)' is undefined (callable globals: \(Self.functions.sorted().joined(separator: ", ")))")
        }
    }

    private func call(method: String, on receiver: JinjaValue, _ a: [JinjaValue], _ kw: [String: JinjaValue]) throws(Failure) -> JinjaValue {
        func string(_ k: Int) throws(Failure) -> String? {
            guard k < a.count else { return nil }
            if a[k] == .none { return nil }
            guard case let .string(s) = a[k] else { throw fail("\(method)() argument \(k + 1) must be a string") }
            return s
        }
        switch receiver {
        case let .string(s):
            switch method {
            case "strip", "lstrip", "rstrip":
                let chars = try string(0).map { Set($0.unicodeScalars) }
                let drop: (Unicode.Scalar) -> Bool = { chars?.contains($0) ?? $0.properties.isWhitespace }
                var scalars = Array(s.unicodeScalars)[...]
                if method != "rstrip" { scalars = scalars.drop(while: drop) }
                if method != "lstrip" { while let last = scalars.last, drop(last) { scalars = scalars.dropLast() } }
                return .string(String(String.UnicodeScalarView(scalars)))
            case "upper": return .string(s.uppercased())
            case "lower": return .string(s.lowercased())
            case "title": return .string(Self.title(s))
            case "capitalize": return .string(Self.capitalize(s))
            case "startswith", "endswith":
                var candidates: [String] = []
                if case let .array(list)? = a.first { candidates = list.compactMap { if case let .string(x) = $0 { return x } else { return nil } } }
                else if let p = try string(0) { candidates = [p] }
                guard !candidates.isEmpty else { throw fail("\(method)() takes a string or a tuple of strings") }
                let scalars = Array(s.unicodeScalars)
                return .bool(candidates.contains { c in
                    let cs = Array(c.unicodeScalars)
                    return method == "startswith" ? scalars.starts(with: cs) : scalars.reversed().starts(with: cs.reversed())
                })
            case "split", "rsplit":
                let separator = try string(0)
                let limit = (a.count > 1 ? a[1].integer : kw["maxsplit"]?.integer) ?? -1
                return .array(try Self.split(s, separator: separator, limit: limit, fromRight: method == "rsplit").map { .string($0) })
            case "replace":
                guard let old = try string(0), let new = try string(1) else { throw fail("replace() takes two strings") }
                return .string(Self.replace(s, old, new, count: a.count > 2 ? a[2].integer ?? -1 : -1))
            case "join":
                guard case let .array(items)? = a.first else { throw fail("join() takes a list") }
                return .string(items.map(\.text).joined(separator: s))
            case "count":
                guard let sub = try string(0) else { throw fail("count() takes a string") }
                return .int(sub.isEmpty ? s.count + 1 : s.components(separatedBy: sub).count - 1)
            case "find":
                guard let sub = try string(0) else { throw fail("find() takes a string") }
                guard let r = s.range(of: sub) else { return .int(-1) }
                return .int(s.distance(from: s.startIndex, to: r.lowerBound))
            case "isdigit": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType == .decimal })
            default: break
            }
        case let .object(o):
            switch method {
            case "items": return .array(o.keys.map { .array([.string($0), o[$0] ?? .none]) })
            case "keys": return .array(o.keys.map { .string($0) })
            case "values": return .array(o.keys.map { o[$0] ?? .none })
            case "get":
                guard let key = try string(0) else { throw fail("get() takes a key") }
                return o[key] ?? (a.count > 1 ? a[1] : .none)
            default: break
            }
        case .undefined:
            throw fail("'\(method)' of an undefined value")
        default: break
        }
        throw fail("method '\(method)' of '\(receiver.typeName)'")
    }

    // MARK: filters and tests

    private func filter(_ name: String, _ value: JinjaValue, _ a: [JinjaValue], _ kw: [String: JinjaValue]) throws(Failure) -> JinjaValue {
        func argument(_ k: Int, _ key: String) -> JinjaValue? { k < a.count ? a[k] : kw[key] }
        switch name {
        case "trim":
            return try call(method: "strip", on: .string(value.text), argument(0, "chars").map { [$0] } ?? [], [:])
        case "capitalize": return .string(Self.capitalize(value.text))
        case "lower": return .string(value.text.lowercased())
        case "upper": return .string(value.text.uppercased())
        case "title": return .string(Self.title(value.text))
        case "string": return .string(value.text)
        case "safe": return value   // marks HTML-safe; rendering does not escape here
        case "length", "count":
            switch value {
            case let .string(s): return .int(s.count)
            case let .array(x): return .int(x.count)
            case let .object(o), let .namespace(o): return .int(o.keys.count)
            case .undefined: return .int(0)
            default: throw fail("object of type '\(value.typeName)' has no len()")
            }
        case "default", "d":
            let fallback = argument(0, "default_value") ?? .string("")
            let boolean = argument(1, "boolean")?.isTruthy ?? false
            if case .undefined = value { return fallback }
            return boolean && !value.isTruthy ? fallback : value
        case "tojson":
            let indent = argument(0, "indent")?.integer
            let sortKeys = kw["sort_keys"]?.isTruthy ?? false
            do { return .string(try value.json(indent: indent, sortKeys: sortKeys)) } catch { throw fail(error.message) }
        case "join":
            let separator = argument(0, "d")?.text ?? ""
            var items = try iterate(value)
            if let attributeName = argument(1, "attribute") { items = try items.map { v throws(Failure) in try path(v, attributeName) } }
            return .string(items.map(\.text).joined(separator: separator))
        case "replace":
            guard let old = argument(0, "old"), let new = argument(1, "new") else { throw fail("replace needs old and new") }
            return .string(Self.replace(value.text, old.text, new.text, count: argument(2, "count")?.integer ?? -1))
        case "int":
            let fallback = argument(0, "default")?.integer ?? 0
            switch value {
            case let .int(i): return .int(i)
            case let .bool(b): return .int(b ? 1 : 0)
            case let .double(d): return d.isFinite ? .int(Int(d)) : .int(fallback)
            case let .string(s):
                let t = s.trimmingCharacters(in: .whitespaces)
                if let i = Int(t) { return .int(i) }
                if let d = Double(t), d.isFinite { return .int(Int(d)) }
                return .int(fallback)
            default: return .int(fallback)
            }
        case "float":
            if let d = value.number { return .double(d) }
            if case let .string(s) = value, let d = Double(s.trimmingCharacters(in: .whitespaces)) { return .double(d) }
            return .double(argument(0, "default")?.number ?? 0)
        case "abs":
            switch value {
            case let .int(i): return .int(abs(i))
            case let .double(d): return .double(abs(d))
            default: throw fail("bad operand type for abs(): '\(value.typeName)'")
            }
        case "round":
            guard let d = value.number else { throw fail("round of a '\(value.typeName)'") }
            let digits = argument(0, "precision")?.integer ?? 0
            let scale = pow(10, Double(digits))
            return .double((d * scale).rounded(.toNearestOrEven) / scale)
        case "first":
            let items = try iterate(value)
            return items.first ?? .undefined
        case "last":
            let items = try iterate(value)
            return items.last ?? .undefined
        case "list": return .array(try iterate(value))
        case "reverse":
            if case let .string(s) = value { return .string(String(s.reversed())) }
            return .array(try iterate(value).reversed())
        case "unique":
            var seen: [JinjaValue] = []
            for v in try iterate(value) where !seen.contains(where: { JinjaValue.equal($0, v) }) { seen.append(v) }
            return .array(seen)
        case "sum":
            var total: JinjaValue = .int(0)
            for v in try iterate(value) { total = try binary("+", total, v) }
            return total
        case "items", "dictsort":
            guard case let .object(o) = value else {
                if case .undefined = value { return .array([]) }
                throw fail("\(name) of a '\(value.typeName)'")
            }
            let keys = name == "dictsort" ? o.keys.sorted { $0.lowercased() < $1.lowercased() } : o.keys
            return .array(keys.map { .array([.string($0), o[$0] ?? .none]) })
        case "sort":
            let items = try iterate(value)
            let reverse = argument(0, "reverse")?.isTruthy ?? false
            let key = argument(2, "attribute")
            var keyed: [(JinjaValue, JinjaValue)] = []
            for v in items { keyed.append((try key.map { k throws(Failure) in try path(v, k) } ?? v, v)) }
            var failure: Failure?
            let sorted = keyed.sorted { x, y in
                do throws(Failure) { return try binary("<", x.0, y.0).isTruthy } catch { failure = error; return false }
            }
            if let failure { throw failure }
            return .array((reverse ? Array(sorted.reversed()) : sorted).map { $0.1 })
        case "indent":
            let width = argument(0, "width")?.integer ?? 4
            let first = argument(1, "first")?.isTruthy ?? false
            let blank = argument(2, "blank")?.isTruthy ?? false
            let pad = String(repeating: " ", count: max(0, width))
            let lines = value.text.split(separator: "\n", omittingEmptySubsequences: false)
            var out: [String] = []
            for (k, l) in lines.enumerated() {
                out.append((k == 0 && !first) || (l.isEmpty && !blank) ? String(l) : pad + l)
            }
            return .string(out.joined(separator: "\n"))
        case "map":
            let items = try iterate(value)
            if let attributeName = kw["attribute"] {
                return .array(try items.map { v throws(Failure) in
                    let r = try path(v, attributeName)
                    if case .undefined = r, let d = kw["default"] { return d }
                    return r
                })
            }
            guard case let .string(filterName)? = a.first else { throw fail("map needs a filter name or attribute=") }
            guard JinjaVocabulary.filters.contains(filterName) else { throw fail("filter '\(filterName)'") }
            return .array(try items.map { v throws(Failure) in try filter(filterName, v, Array(a.dropFirst()), [:]) })
        case "select", "reject", "selectattr", "rejectattr":
            let byAttribute = name.hasSuffix("attr")
            let keep = name.hasPrefix("select")
            var rest = a[...]
            var attributeName: JinjaValue?
            if byAttribute {
                guard let first = rest.first else { throw fail("\(name) needs an attribute name") }
                attributeName = first
                rest = rest.dropFirst()
            }
            let testName = rest.first.map(\.text)
            let testArgs = Array(rest.dropFirst())
            if let testName, !JinjaVocabulary.tests.contains(testName) { throw fail("test '\(testName)'") }
            var out: [JinjaValue] = []
            for v in try iterate(value) {
                let subject = try attributeName.map { n throws(Failure) in try path(v, n) } ?? v
                let passed = try testName.map { t throws(Failure) in try test(t, subject, testArgs) } ?? subject.isTruthy
                if passed == keep { out.append(v) }
            }
            return .array(out)
        default:
            throw fail("filter '\(name)'")
        }
    }

    /// jinja2's attribute lookup for filters: "a.b.0" walks dict keys and list indices.
    private func path(_ value: JinjaValue, _ name: JinjaValue) throws(Failure) -> JinjaValue {
        if let i = name.integer { return try item(value, .int(i)) }
        var v = value
        for part in name.text.split(separator: ".", omittingEmptySubsequences: false) {
            if case .undefined = v { return .undefined }
            if let i = Int(part) { v = try item(v, .int(i)) } else { v = try item(v, .string(String(part))) }
        }
        return v
    }

    private func test(_ name: String, _ v: JinjaValue, _ a: [JinjaValue]) throws(Failure) -> Bool {
        func other() throws(Failure) -> JinjaValue {
            guard let first = a.first else { throw fail("test '\(name)' needs an argument") }
            return first
        }
        switch name {
        case "defined": if case .undefined = v { return false } else { return true }
        case "undefined": if case .undefined = v { return true } else { return false }
        case "none": return v == .none
        case "boolean": if case .bool = v { return true } else { return false }
        case "true": return v == .bool(true)
        case "false": return v == .bool(false)
        case "string": if case .string = v { return true } else { return false }
        case "mapping": if case .object = v { return true } else { return false }
        case "number": return v.number != nil
        case "integer": if case .int = v { return true } else { return false }
        case "float": if case .double = v { return true } else { return false }
        case "iterable", "sequence":
            switch v {
            case .string, .array, .object: return true
            default: return false
            }
        case "equalto", "eq", "==", "sameas": return JinjaValue.equal(v, try other())
        case "ne", "!=": return !JinjaValue.equal(v, try other())
        case "lt", "<": return try binary("<", v, try other()).isTruthy
        case "le", "<=": return try binary("<=", v, try other()).isTruthy
        case "gt", ">": return try binary(">", v, try other()).isTruthy
        case "ge", ">=": return try binary(">=", v, try other()).isTruthy
        case "in": return try contains(try other(), v)
        case "odd", "even", "divisibleby":
            guard let n = v.integer else { throw fail("test '\(name)' of a '\(v.typeName)'") }
            if name == "divisibleby" {
                guard let d = try other().integer, d != 0 else { throw fail("divisibleby needs a non-zero integer") }
                return n % d == 0
            }
            return (n % 2 != 0) == (name == "odd")
        case "lower": return v.text == v.text.lowercased()
        case "upper": return v.text == v.text.uppercased()
        default: throw fail("test '\(name)'")
        }
    }

    // MARK: Python string helpers

    static func capitalize(_ s: String) -> String {
        guard let first = s.first else { return s }
        return String(first).uppercased() + s.dropFirst().lowercased()
    }

    /// jinja2's title filter: each word's first letter upper, the rest lower (words split at spaces, -, ( , [, {).
    static func title(_ s: String) -> String {
        var out = "", startOfWord = true
        for c in s {
            out += startOfWord ? String(c).uppercased() : String(c).lowercased()
            startOfWord = c.isWhitespace || "-([{".contains(c)
        }
        return out
    }

    static func replace(_ s: String, _ old: String, _ new: String, count: Int) -> String {
        guard count != 0 else { return s }
        if old.isEmpty {
            var out = new, n = 1
            for c in s {
                out.append(c)
                if count < 0 || n < count { out += new; n += 1 }
            }
            return out
        }
        var out = "", rest = s[...], n = 0
        while count < 0 || n < count, let r = rest.range(of: old) {
            out += rest[..<r.lowerBound] + new
            rest = rest[r.upperBound...]
            n += 1
        }
        return out + rest
    }

    /// Python's str.split / str.rsplit.
    static func split(_ s: String, separator: String?, limit: Int, fromRight: Bool) throws(Failure) -> [String] {
        if let separator {
            guard !separator.isEmpty else { throw Failure(line: 0, message: "empty separator", raised: false) }
            var parts = s.components(separatedBy: separator)
            if limit >= 0, parts.count > limit + 1 {
                if fromRight {
                    let head = parts[..<(parts.count - limit)].joined(separator: separator)
                    parts = [head] + parts[(parts.count - limit)...]
                } else {
                    parts = Array(parts[..<limit]) + [parts[limit...].joined(separator: separator)]
                }
            }
            return parts
        }
        // Whitespace runs; leading/trailing whitespace gives no empty strings.
        var words = s.split(whereSeparator: { $0.isWhitespace }).map(String.init)
        if limit >= 0, words.count > limit + 1 {
            // The remainder keeps its inner whitespace, as Python does.
            if fromRight {
                words = Array(words.suffix(limit))
                var head = s
                for w in words.reversed() {
                    if let r = head.range(of: w, options: .backwards) { head = String(head[..<r.lowerBound]) }
                }
                words.insert(head.trimmingCharacters(in: .whitespacesAndNewlines), at: 0)
            } else {
                let kept = Array(words.prefix(limit))
                var rest = Substring(s)
                for w in kept {
                    if let r = rest.range(of: w) { rest = rest[r.upperBound...] }
                }
                words = kept + [String(rest.drop(while: { $0.isWhitespace }))]
            }
        }
        return words
    }
}
