// Lexer and parser of the Jinja subset chat templates use, with jinja2's whitespace rules as
// transformers configures them (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
//   - one trailing newline of the template is dropped; \r\n and \r become \n;
//   - `{%-`, `{{-`, `{#-` strip all whitespace before the tag, `-%}`, `-}}`, `-#}` all after it;
//   - trim_blocks: the first newline after `%}` / `#}` is dropped (`+%}` keeps it);
//   - lstrip_blocks: spaces and tabs from the start of a line up to `{%` / `{#` are dropped (`{%+` keeps them).
// Expressions follow jinja2's precedence: `x if c else y` < or < and < not < comparisons and `in`
// < `+ -` < `~` < `* / // %` < `**` < unary `-` < filters `|`, tests `is`, calls, `.attr`, `[i]`.
// Filters and tests are checked here, so a template using one this engine lacks fails when it is
// loaded, as jinja2 fails at compile time.

indirect enum JinjaExpr: Sendable {
    case literal(JinjaValue)
    case name(String)
    case list([JinjaExpr])
    case dict([(JinjaExpr, JinjaExpr)])
    case attribute(JinjaExpr, String)
    case item(JinjaExpr, JinjaExpr)
    case slice(JinjaExpr, JinjaExpr?, JinjaExpr?, JinjaExpr?)
    case call(JinjaExpr, [JinjaExpr], [(String, JinjaExpr)])
    case filter(JinjaExpr, String, [JinjaExpr], [(String, JinjaExpr)])
    case test(JinjaExpr, String, [JinjaExpr], negated: Bool)
    case not(JinjaExpr)
    case negate(JinjaExpr)
    case binary(String, JinjaExpr, JinjaExpr)
    case and(JinjaExpr, JinjaExpr)
    case or(JinjaExpr, JinjaExpr)
    case conditional(JinjaExpr, condition: JinjaExpr, otherwise: JinjaExpr?)
}

indirect enum JinjaNode: Sendable {
    case text(String)
    case output(JinjaExpr, line: Int)
    case forLoop(targets: [String], iterable: JinjaExpr, condition: JinjaExpr?, body: [JinjaNode], otherwise: [JinjaNode], line: Int)
    case branches([(JinjaExpr, [JinjaNode])], otherwise: [JinjaNode], line: Int)
    case set(targets: [String], JinjaExpr, line: Int)
    case setAttribute(name: String, attribute: String, JinjaExpr, line: Int)
    case setBlock(name: String, body: [JinjaNode])
    case macro(name: String, parameters: [(String, JinjaExpr?)], body: [JinjaNode], line: Int)
    case breakLoop(line: Int)
    case continueLoop(line: Int)
}

/// A syntax problem at a line of the template.
struct JinjaSyntaxError: Error {
    var line: Int
    var message: String
    /// true when the text is valid Jinja that this engine does not implement.
    var unsupported: Bool
}

enum JinjaToken: Equatable, Sendable {
    case name(String)
    case string(String)
    case int(Int)
    case double(Double)
    case op(String)
}

/// One piece of the template after lexing.
struct JinjaPiece: Sendable {
    enum Kind: Sendable { case text(String), output, statement }
    var kind: Kind
    var tokens: [JinjaToken]
    var line: Int
}

enum JinjaLexer {
    static func lex(_ template: String) throws(JinjaSyntaxError) -> [JinjaPiece] {
        var source = template.replacingAll("\r\n", with: "\n").replacingAll("\r", with: "\n")
        if source.hasSuffix("\n") { source.removeLast() }
        let s = Array(source.unicodeScalars)
        var pieces: [JinjaPiece] = []
        var pos = 0, line = 1
        var stripNextText = false   // the previous tag ended with `-`
        var lineStarting = true     // the previous match ended with a newline (jinja2's line_starting)

        func starts(_ text: String, at i: Int) -> Bool {
            var j = i
            for c in text.unicodeScalars {
                guard j < s.count, s[j] == c else { return false }
                j += 1
            }
            return true
        }
        func newlines(_ a: Int, _ b: Int) -> Int { s[a..<b].reduce(0) { $0 + ($1 == "\n" ? 1 : 0) } }

        while pos <= s.count {
            // The next tag opener.
            var open = pos
            while open < s.count - 1, !(s[open] == "{" && (s[open + 1] == "{" || s[open + 1] == "%" || s[open + 1] == "#")) { open += 1 }
            if open >= s.count - 1 { open = s.count }
            var text = Array(s[pos..<open])
            if stripNextText { text = Array(text.drop { $0.properties.isWhitespace }) }
            guard open < s.count else {
                if !text.isEmpty { pieces.append(JinjaPiece(kind: .text(String(String.UnicodeScalarView(text))), tokens: [], line: line)) }
                break
            }
            let kind = s[open + 1]
            let sign: Unicode.Scalar? = open + 2 < s.count && (s[open + 2] == "-" || s[open + 2] == "+") ? s[open + 2] : nil
            if sign == "-" {
                while let last = text.last, last.properties.isWhitespace { text.removeLast() }
            } else if sign != "+", kind != "{" {
                // lstrip_blocks: only spaces/tabs between the line's start and the tag.
                let lineStart = (text.lastIndex(of: "\n").map { $0 + 1 }) ?? 0
                if lineStart > 0 || lineStarting, text[lineStart...].allSatisfy({ $0 == " " || $0 == "\t" }) {
                    text.removeSubrange(lineStart...)
                }
            }
            if !text.isEmpty { pieces.append(JinjaPiece(kind: .text(String(String.UnicodeScalarView(text))), tokens: [], line: line)) }
            line += newlines(pos, open)
            let tagLine = line
            var i = open + 2 + (sign == nil ? 0 : 1)
            if kind == "#" {
                var end = i
                while end < s.count - 1, !(s[end] == "#" && s[end + 1] == "}") { end += 1 }
                guard end < s.count - 1 else { throw JinjaSyntaxError(line: tagLine, message: "unclosed comment {# … #}", unsupported: false) }
                stripNextText = end > i && s[end - 1] == "-"
                line += newlines(open, end + 2)
                pos = end + 2
                lineStarting = false
                if !stripNextText, !(end > i && s[end - 1] == "+"), pos < s.count, s[pos] == "\n" {
                    pos += 1
                    line += 1
                    lineStarting = true
                }
                continue
            }
            let close: Unicode.Scalar = kind == "{" ? "}" : "%"
            var tokens: [JinjaToken] = []
            var depth = 0
            while true {
                while i < s.count, s[i].properties.isWhitespace {
                    if s[i] == "\n" { line += 1 }
                    i += 1
                }
                guard i < s.count else {
                    throw JinjaSyntaxError(line: tagLine, message: kind == "{" ? "unclosed {{ … }}" : "unclosed {% … %}", unsupported: false)
                }
                if depth == 0 {
                    if s[i] == "-" || s[i] == "+", i + 2 < s.count, s[i + 1] == close, s[i + 2] == "}" {
                        stripNextText = s[i] == "-"
                        let keepNewline = s[i] == "+"
                        i += 3
                        lineStarting = false
                        if kind == "%", !stripNextText, !keepNewline, i < s.count, s[i] == "\n" { i += 1; line += 1; lineStarting = true }
                        break
                    }
                    if s[i] == close, i + 1 < s.count, s[i + 1] == "}" {
                        stripNextText = false
                        i += 2
                        lineStarting = false
                        if kind == "%", i < s.count, s[i] == "\n" { i += 1; line += 1; lineStarting = true }
                        break
                    }
                }
                let c = s[i]
                if c == "'" || c == "\"" {
                    var j = i + 1
                    var raw: [Unicode.Scalar] = []
                    while j < s.count, s[j] != c {
                        if s[j] == "\\", j + 1 < s.count { raw.append(s[j]); j += 1 }
                        if s[j] == "\n" { line += 1 }
                        raw.append(s[j])
                        j += 1
                    }
                    guard j < s.count else { throw JinjaSyntaxError(line: line, message: "unterminated string literal", unsupported: false) }
                    tokens.append(.string(unescape(raw)))
                    i = j + 1
                } else if c.properties.numericType != nil, c.isASCII {
                    var j = i
                    while j < s.count, (s[j].isASCII && s[j].properties.numericType != nil) || s[j] == "_" { j += 1 }
                    var isFloat = false
                    if j + 1 < s.count, s[j] == ".", s[j + 1].isASCII, s[j + 1].properties.numericType != nil {
                        isFloat = true
                        j += 1
                        while j < s.count, (s[j].isASCII && s[j].properties.numericType != nil) || s[j] == "_" { j += 1 }
                    }
                    if j < s.count, s[j] == "e" || s[j] == "E" {
                        var k = j + 1
                        if k < s.count, s[k] == "+" || s[k] == "-" { k += 1 }
                        if k < s.count, s[k].isASCII, s[k].properties.numericType != nil {
                            isFloat = true
                            j = k
                            while j < s.count, s[j].isASCII, s[j].properties.numericType != nil { j += 1 }
                        }
                    }
                    let literal = String(String.UnicodeScalarView(s[i..<j])).replacingAll("_", with: "")
                    if isFloat, let d = Double(literal) { tokens.append(.double(d)) }
                    else if let n = Int(literal) { tokens.append(.int(n)) }
                    else { throw JinjaSyntaxError(line: line, message: "number '\(literal)' out of range", unsupported: false) }
                    i = j
                } else if c == "_" || c.properties.isAlphabetic {
                    var j = i
                    while j < s.count, s[j] == "_" || s[j].properties.isAlphabetic || (s[j].isASCII && s[j].properties.numericType != nil) { j += 1 }
                    tokens.append(.name(String(String.UnicodeScalarView(s[i..<j]))))
                    i = j
                } else {
                    let two = i + 1 < s.count ? String(String.UnicodeScalarView([c, s[i + 1]])) : ""
                    if ["==", "!=", "<=", ">=", "//", "**"].contains(two) {
                        tokens.append(.op(two))
                        i += 2
                    } else if "+-*/%~<>|.,:()[]{}=".unicodeScalars.contains(c) {
                        if c == "(" || c == "[" || c == "{" { depth += 1 }
                        if c == ")" || c == "]" || c == "}" { depth -= 1 }
                        tokens.append(.op(String(c)))
                        i += 1
                    } else {
                        throw JinjaSyntaxError(line: line, message: "unexpected character '\(c)'", unsupported: false)
                    }
                }
            }
            pieces.append(JinjaPiece(kind: kind == "{" ? .output : .statement, tokens: tokens, line: tagLine))
            pos = i
        }
        return pieces
    }

    /// Python's unicode-escape decoding of a string literal's body (unknown escapes stay as written).
    static func unescape(_ raw: [Unicode.Scalar]) -> String {
        var out = String.UnicodeScalarView()
        var i = 0
        while i < raw.count {
            let c = raw[i]
            guard c == "\\", i + 1 < raw.count else { out.append(c); i += 1; continue }
            let e = raw[i + 1]
            i += 2
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "v": out.append("\u{0B}")
            case "0": out.append("\u{0}")
            case "\n": break
            case "x", "u", "U":
                let width = e == "x" ? 2 : e == "u" ? 4 : 8
                let digits = String(String.UnicodeScalarView(raw[min(i, raw.count)..<min(i + width, raw.count)]))
                if digits.count == width, let v = UInt32(digits, radix: 16), let scalar = Unicode.Scalar(v) {
                    out.append(scalar)
                    i += width
                } else {
                    out.append("\\")
                    out.append(e)
                }
            default:
                out.append("\\")
                out.append(e)
            }
        }
        return String(out)
    }
}

/// Filters, tests and statements the runtime implements (anything else is refused at load time).
enum JinjaVocabulary {
    static let filters: Set<String> = [
        "abs", "capitalize", "count", "d", "default", "first", "float", "indent", "int", "items", "join", "last",
        "length", "list", "lower", "map", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select",
        "selectattr", "string", "sum", "title", "tojson", "trim", "unique", "upper", "dictsort", "sort",
    ]
    static let tests: Set<String> = [
        "boolean", "defined", "divisibleby", "eq", "equalto", "==", "even", "false", "float", "ge", "gt", ">", ">=",
        "in", "integer", "iterable", "le", "lower", "lt", "<", "<=", "mapping", "ne", "!=", "none", "number", "odd",
        "sameas", "sequence", "string", "true", "undefined", "upper",
    ]
}

struct JinjaParser {
    private var pieces: [JinjaPiece]
    private var index = 0

    init(pieces: [JinjaPiece]) { self.pieces = pieces }

    static func parse(_ template: String) throws(JinjaSyntaxError) -> [JinjaNode] {
        var parser = JinjaParser(pieces: try JinjaLexer.lex(template))
        let (nodes, end) = try parser.block(until: [])
        if let end { throw JinjaSyntaxError(line: end.line, message: "unexpected {% \(end.tag) %}", unsupported: false) }
        return nodes
    }

    /// Nodes up to one of `ends` (returned with its tokens after the keyword), or to the end of the template.
    private mutating func block(until ends: Set<String>, opener: (tag: String, line: Int)? = nil)
        throws(JinjaSyntaxError) -> ([JinjaNode], (tag: String, rest: [JinjaToken], line: Int)?) {
        var nodes: [JinjaNode] = []
        while index < pieces.count {
            let piece = pieces[index]
            index += 1
            switch piece.kind {
            case let .text(t): nodes.append(.text(t))
            case .output:
                var e = JinjaExpressionParser(tokens: piece.tokens, line: piece.line)
                let expr = try e.expression()
                try e.expectEnd()
                nodes.append(.output(expr, line: piece.line))
            case .statement:
                guard case let .name(keyword)? = piece.tokens.first else {
                    throw JinjaSyntaxError(line: piece.line, message: "a {% … %} tag without a statement name", unsupported: false)
                }
                let rest = Array(piece.tokens.dropFirst())
                if ends.contains(keyword) { return (nodes, (keyword, rest, piece.line)) }
                nodes.append(try statement(keyword, rest, line: piece.line))
            }
        }
        if let opener {
            throw JinjaSyntaxError(line: opener.line, message: "unclosed {% \(opener.tag) %} (no {% \(ends.sorted().joined(separator: " / ")) %} before the end of the template)", unsupported: false)
        }
        return (nodes, nil)
    }

    private mutating func statement(_ keyword: String, _ tokens: [JinjaToken], line: Int) throws(JinjaSyntaxError) -> JinjaNode {
        var e = JinjaExpressionParser(tokens: tokens, line: line)
        switch keyword {
        case "if":
            var branches: [(JinjaExpr, [JinjaNode])] = []
            var condition = try e.expression()
            try e.expectEnd()
            while true {
                let (body, end) = try block(until: ["elif", "else", "endif"], opener: ("if", line))
                branches.append((condition, body))
                guard let end else { break }
                switch end.tag {
                case "elif":
                    var c = JinjaExpressionParser(tokens: end.rest, line: end.line)
                    condition = try c.expression()
                    try c.expectEnd()
                case "else":
                    try JinjaExpressionParser(tokens: end.rest, line: end.line).expectEnd()
                    let (otherwise, _) = try block(until: ["endif"], opener: ("if", line))
                    return .branches(branches, otherwise: otherwise, line: line)
                default:
                    return .branches(branches, otherwise: [], line: line)
                }
            }
            return .branches(branches, otherwise: [], line: line)
        case "for":
            var targets = [try e.name()]
            while e.consume(.op(",")) { targets.append(try e.name()) }
            try e.expect(.name("in"))
            let iterable = try e.expression(allowConditional: false)
            var condition: JinjaExpr?
            if e.consume(.name("if")) { condition = try e.expression(allowConditional: false) }
            if e.consume(.name("recursive")) { throw JinjaSyntaxError(line: line, message: "{% for … recursive %}", unsupported: true) }
            try e.expectEnd()
            let (body, end) = try block(until: ["else", "endfor"], opener: ("for", line))
            var otherwise: [JinjaNode] = []
            if end?.tag == "else" { (otherwise, _) = try block(until: ["endfor"], opener: ("for", line)) }
            return .forLoop(targets: targets, iterable: iterable, condition: condition, body: body, otherwise: otherwise, line: line)
        case "set":
            let first = try e.name()
            if e.consume(.op(".")) {
                let attribute = try e.name()
                try e.expect(.op("="))
                let value = try e.expression()
                try e.expectEnd()
                return .setAttribute(name: first, attribute: attribute, value, line: line)
            }
            var targets = [first]
            while e.consume(.op(",")) { targets.append(try e.name()) }
            if e.atEnd, targets.count == 1 {
                let (body, _) = try block(until: ["endset"], opener: ("set", line))
                return .setBlock(name: first, body: body)
            }
            try e.expect(.op("="))
            let value = try e.expression()
            try e.expectEnd()
            return .set(targets: targets, value, line: line)
        case "macro":
            let name = try e.name()
            try e.expect(.op("("))
            var parameters: [(String, JinjaExpr?)] = []
            while !e.consume(.op(")")) {
                if !parameters.isEmpty { try e.expect(.op(",")); if e.consume(.op(")")) { break } }
                let parameter = try e.name()
                parameters.append((parameter, e.consume(.op("=")) ? try e.expression() : nil))
            }
            try e.expectEnd()
            let (body, _) = try block(until: ["endmacro"], opener: ("macro", line))
            return .macro(name: name, parameters: parameters, body: body, line: line)
        case "generation":
            // transformers' AssistantTracker: marks the assistant's tokens; renders its body as is.
            try e.expectEnd()
            let (body, _) = try block(until: ["endgeneration"], opener: ("generation", line))
            return .branches([(.literal(.bool(true)), body)], otherwise: [], line: line)
        case "break":
            try e.expectEnd()
            return .breakLoop(line: line)
        case "continue":
            try e.expectEnd()
            return .continueLoop(line: line)
        case "endif", "endfor", "endset", "endgeneration", "elif", "else", "endmacro", "endcall", "endfilter", "endraw", "endwith", "endblock":
            throw JinjaSyntaxError(line: line, message: "unexpected {% \(keyword) %}", unsupported: false)
        default:
            throw JinjaSyntaxError(line: line, message: "statement {% \(keyword) %}", unsupported: true)
        }
    }
}

struct JinjaExpressionParser {
    private let tokens: [JinjaToken]
    private var i = 0
    private let line: Int

    init(tokens: [JinjaToken], line: Int) {
        self.tokens = tokens
        self.line = line
    }

    var atEnd: Bool { i >= tokens.count }
    private var peek: JinjaToken? { i < tokens.count ? tokens[i] : nil }

    private func error(_ message: String) -> JinjaSyntaxError { JinjaSyntaxError(line: line, message: message, unsupported: false) }

    mutating func consume(_ token: JinjaToken) -> Bool {
        guard peek == token else { return false }
        i += 1
        return true
    }

    mutating func expect(_ token: JinjaToken) throws(JinjaSyntaxError) {
        guard consume(token) else { throw error("expected \(Self.describe(token)), found \(peek.map(Self.describe) ?? "the end of the tag")") }
    }

    func expectEnd() throws(JinjaSyntaxError) {
        if let peek { throw error("unexpected \(Self.describe(peek))") }
    }

    mutating func name() throws(JinjaSyntaxError) -> String {
        guard case let .name(n)? = peek else { throw error("expected a name, found \(peek.map(Self.describe) ?? "the end of the tag")") }
        i += 1
        return n
    }

    static func describe(_ t: JinjaToken) -> String {
        switch t {
        case let .name(n): return "'\(n)'"
        case let .string(s): return "string '\(s)'"
        case let .int(n): return "\(n)"
        case let .double(d): return "\(d)"
        case let .op(o): return "'\(o)'"
        }
    }

    mutating func expression(allowConditional: Bool = true) throws(JinjaSyntaxError) -> JinjaExpr {
        let value = try or()
        guard allowConditional, consume(.name("if")) else { return value }
        let condition = try or()
        let otherwise: JinjaExpr? = consume(.name("else")) ? try expression() : nil
        return .conditional(value, condition: condition, otherwise: otherwise)
    }

    private mutating func or() throws(JinjaSyntaxError) -> JinjaExpr {
        var left = try and()
        while consume(.name("or")) { left = .or(left, try and()) }
        return left
    }

    private mutating func and() throws(JinjaSyntaxError) -> JinjaExpr {
        var left = try not()
        while consume(.name("and")) { left = .and(left, try not()) }
        return left
    }

    private mutating func not() throws(JinjaSyntaxError) -> JinjaExpr {
        if consume(.name("not")) { return .not(try not()) }
        return try compare()
    }

    private mutating func compare() throws(JinjaSyntaxError) -> JinjaExpr {
        var left = try additive()
        while true {
            if case let .op(o)? = peek, ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                i += 1
                left = .binary(o, left, try additive())
            } else if consume(.name("in")) {
                left = .binary("in", left, try additive())
            } else if peek == .name("not"), i + 1 < tokens.count, tokens[i + 1] == .name("in") {
                i += 2
                left = .not(.binary("in", left, try additive()))
            } else {
                return left
            }
        }
    }

    private mutating func additive() throws(JinjaSyntaxError) -> JinjaExpr {
        var left = try concat()
        while case let .op(o)? = peek, o == "+" || o == "-" {
            i += 1
            left = .binary(o, left, try concat())
        }
        return left
    }

    private mutating func concat() throws(JinjaSyntaxError) -> JinjaExpr {
        var left = try multiplicative()
        while consume(.op("~")) { left = .binary("~", left, try multiplicative()) }
        return left
    }

    private mutating func multiplicative() throws(JinjaSyntaxError) -> JinjaExpr {
        var left = try power()
        while case let .op(o)? = peek, ["*", "/", "//", "%"].contains(o) {
            i += 1
            left = .binary(o, left, try power())
        }
        return left
    }

    private mutating func power() throws(JinjaSyntaxError) -> JinjaExpr {
        var left = try unary()
        while consume(.op("**")) { left = .binary("**", left, try unary()) }
        return left
    }

    private mutating func unary() throws(JinjaSyntaxError) -> JinjaExpr {
        if consume(.op("-")) { return try postfixFilters(.negate(try unary(withFilters: false))) }
        if consume(.op("+")) { return try postfixFilters(try unary(withFilters: false)) }
        return try unary(withFilters: true)
    }

    private mutating func unary(withFilters: Bool) throws(JinjaSyntaxError) -> JinjaExpr {
        if consume(.op("-")) { return .negate(try unary(withFilters: false)) }
        let value = try postfix(try primary())
        return withFilters ? try postfixFilters(value) : value
    }

    /// `|filter`, `is test` and calls after them, as jinja2's parse_filter_expr.
    private mutating func postfixFilters(_ start: JinjaExpr) throws(JinjaSyntaxError) -> JinjaExpr {
        var node = start
        while true {
            if consume(.op("|")) {
                let name = try self.name()
                guard JinjaVocabulary.filters.contains(name) else {
                    throw JinjaSyntaxError(line: line, message: "filter '\(name)'", unsupported: true)
                }
                var args: [JinjaExpr] = [], kwargs: [(String, JinjaExpr)] = []
                if consume(.op("(")) { (args, kwargs) = try arguments() }
                node = .filter(node, name, args, kwargs)
            } else if consume(.name("is")) {
                let negated = consume(.name("not"))
                var name: String
                if case let .op(o)? = peek, ["==", "!=", "<", ">", "<=", ">="].contains(o) { i += 1; name = o } else { name = try self.name() }
                if name == "in" || name == "none" || name == "true" || name == "false" { name = name.lowercased() }
                guard JinjaVocabulary.tests.contains(name) else {
                    throw JinjaSyntaxError(line: line, message: "test '\(name)'", unsupported: true)
                }
                var args: [JinjaExpr] = []
                if consume(.op("(")) {
                    let (a, kw) = try arguments()
                    guard kw.isEmpty else { throw error("keyword arguments to test '\(name)'") }
                    args = a
                } else if let p = peek, startsPrimary(p) {
                    args = [try postfix(try primary())]
                }
                node = .test(node, name, args, negated: negated)
            } else {
                return node
            }
        }
    }

    private func startsPrimary(_ t: JinjaToken) -> Bool {
        switch t {
        case let .name(n): return !["else", "or", "and", "if", "is", "in", "not"].contains(n)
        case .string, .int, .double: return true
        case let .op(o): return o == "[" || o == "{"
        }
    }

    private mutating func postfix(_ start: JinjaExpr) throws(JinjaSyntaxError) -> JinjaExpr {
        var node = start
        while true {
            if consume(.op(".")) {
                switch peek {
                case let .name(n)?: i += 1; node = .attribute(node, n)
                case let .int(n)?: i += 1; node = .item(node, .literal(.int(n)))
                default: throw error("expected an attribute name after '.'")
                }
            } else if consume(.op("[")) {
                var parts: [JinjaExpr?] = [nil]
                var colons = 0
                while !consume(.op("]")) {
                    if consume(.op(":")) {
                        colons += 1
                        guard colons <= 2 else { throw error("a slice has at most two ':'") }
                        parts.append(nil)
                    } else {
                        guard parts[parts.count - 1] == nil else { throw error("expected ']'") }
                        parts[parts.count - 1] = try expression()
                    }
                }
                if colons == 0 {
                    guard let index = parts[0] else { throw error("empty subscript []") }
                    node = .item(node, index)
                } else {
                    while parts.count < 3 { parts.append(nil) }
                    node = .slice(node, parts[0], parts[1], parts[2])
                }
            } else if consume(.op("(")) {
                let (args, kwargs) = try arguments()
                node = .call(node, args, kwargs)
            } else {
                return node
            }
        }
    }

    /// Call arguments after '(' up to and including ')'.
    private mutating func arguments() throws(JinjaSyntaxError) -> ([JinjaExpr], [(String, JinjaExpr)]) {
        var args: [JinjaExpr] = [], kwargs: [(String, JinjaExpr)] = []
        while !consume(.op(")")) {
            if !args.isEmpty || !kwargs.isEmpty { try expect(.op(",")); if consume(.op(")")) { break } }
            if case let .name(n)? = peek, i + 1 < tokens.count, tokens[i + 1] == .op("=") {
                i += 2
                kwargs.append((n, try expression()))
            } else {
                guard kwargs.isEmpty else { throw error("a positional argument after a keyword argument") }
                args.append(try expression())
            }
        }
        return (args, kwargs)
    }

    private mutating func primary() throws(JinjaSyntaxError) -> JinjaExpr {
        guard let t = peek else { throw error("expected an expression, found the end of the tag") }
        i += 1
        switch t {
        case let .string(s):
            var value = s
            while case let .string(more)? = peek { value += more; i += 1 }   // adjacent literals concatenate
            return .literal(.string(value))
        case let .int(n): return .literal(.int(n))
        case let .double(d): return .literal(.double(d))
        case let .name(n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .op("("):
            if consume(.op(")")) { return .list([]) }
            let first = try expression()
            if consume(.op(")")) { return first }
            var items = [first]
            while consume(.op(",")) {
                if peek == .op(")") { break }
                items.append(try expression())
            }
            try expect(.op(")"))
            return .list(items)   // a tuple behaves as a list here
        case .op("["):
            var items: [JinjaExpr] = []
            while !consume(.op("]")) {
                if !items.isEmpty { try expect(.op(",")); if consume(.op("]")) { break } }
                items.append(try expression())
            }
            return .list(items)
        case .op("{"):
            var pairs: [(JinjaExpr, JinjaExpr)] = []
            while !consume(.op("}")) {
                if !pairs.isEmpty { try expect(.op(",")); if consume(.op("}")) { break } }
                let key = try expression()
                try expect(.op(":"))
                pairs.append((key, try expression()))
            }
            return .dict(pairs)
        default:
            throw error("unexpected \(Self.describe(t))")
        }
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty, contains(target) else { return self }
        return split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
