import Foundation
import Router
import RouterSupport
import Testing

// MARK: - Helpers

/// Parses `text` as `router.yaml` and returns the whole rendered error text, or nil when parsing succeeds.
private func renderedErrors(_ text: String, environment: [String: String] = [:]) -> String? {
    do {
        _ = try YAMLLoader.parse(ConfigSource(path: "router.yaml", text: text), environment: environment)
        return nil
    } catch {
        return error.description
    }
}

/// Parses `text` as `router.yaml`, failing the test with the rendered diagnostics if it does not parse.
private func parsed(
    _ text: String, environment: [String: String] = [:], sourceLocation: Testing.SourceLocation = #_sourceLocation
) throws -> ConfigNode {
    do {
        return try YAMLLoader.parse(ConfigSource(path: "router.yaml", text: text), environment: environment)
    } catch {
        Issue.record("unexpected diagnostics:\n\(error.description)", sourceLocation: sourceLocation)
        throw error
    }
}

/// `line:column` of a location, for compact position assertions.
private func position(_ location: ConfigLocation) -> String {
    "\(location.line):\(location.column)"
}

/// A compact rendering of a node tree: scalars quoted (with `q` when written quoted), nulls as `~`.
private func shape(_ node: ConfigNode) -> String {
    switch node.kind {
    case .null:
        return "~"
    case .scalar(let text):
        return "\"\(text)\"" + (node.isQuoted ? "q" : "")
    case .sequence(let items):
        return "[" + items.map(shape).joined(separator: ", ") + "]"
    case .mapping(let entries):
        return "{" + entries.map { "\($0.key): \(shape($0.value))" }.joined(separator: ", ") + "}"
    }
}

// MARK: - Diagnostics

struct ConfigDiagnosticTests {
    @Test func diagnostic_withPathAndLocation_rendersCompilerStyleWithCaret() {
        let source = ConfigSource(
            path: "router.yaml", text: "outputs:\n  archive:\n      max_sise: 10MiB\n")
        let diagnostic = source.diagnostic(
            "unknown option 'max_sise' (did you mean 'max_size'?)",
            at: ConfigLocation(file: "router.yaml", line: 3, column: 7), path: "outputs.archive")
        #expect(
            diagnostic.description == """
                router.yaml:3:7: error: outputs.archive: unknown option 'max_sise' (did you mean 'max_size'?)
                      max_sise: 10MiB
                      ^
                """)
    }

    @Test func diagnostic_withoutLocationOrPath_rendersSeverityAndMessageOnly() {
        let diagnostic = Diagnostic(location: nil, path: nil, message: "no outputs configured", sourceLine: nil)
        #expect(diagnostic.description == "error: no outputs configured")
    }

    @Test func diagnostic_warningWithPathButNoSourceLine_rendersOneLine() {
        let diagnostic = Diagnostic(
            severity: .warning, location: ConfigLocation(file: "r.yaml", line: 2, column: 1),
            path: "inputs.tail", message: "deprecated", sourceLine: nil)
        #expect(diagnostic.description == "r.yaml:2:1: warning: inputs.tail: deprecated")
    }

    @Test func diagnostic_whenSourceLineHasTabs_copiesTabsIntoCaretPadding() {
        let diagnostic = Diagnostic(
            location: ConfigLocation(file: "r.yaml", line: 1, column: 4), path: nil, message: "bad",
            sourceLine: "\t\tab: 1")
        #expect(diagnostic.description == "r.yaml:1:4: error: bad\n\t\tab: 1\n\t\t ^")
    }

    @Test func diagnostic_whenLocationIsWholeFile_rendersFileNameOnly() {
        let diagnostic = Diagnostic(
            location: ConfigLocation(file: "r.yaml", line: 0, column: 0), path: nil, message: "gone",
            sourceLine: nil)
        #expect(diagnostic.description == "r.yaml: error: gone")
    }

    @Test func diagnostic_whenLocationIsInAnotherFile_hasNoSourceLine() {
        let source = ConfigSource(path: "router.yaml", text: "a: 1\n")
        let diagnostic = source.diagnostic(
            "x", at: ConfigLocation(file: "other.yaml", line: 1, column: 1), path: nil)
        #expect(diagnostic.sourceLine == nil)
        #expect(diagnostic.description == "other.yaml:1:1: error: x")
    }

    @Test func configErrors_description_joinsDiagnosticsWithNewlines() {
        let errors = ConfigErrors([
            Diagnostic(location: nil, path: nil, message: "one", sourceLine: nil),
            Diagnostic(severity: .warning, location: nil, path: "a.b", message: "two", sourceLine: nil),
        ])
        #expect(errors.description == "error: one\nwarning: a.b: two")
    }

    @Test func configSource_line_handlesCRLFLoneCRAndOutOfRange() {
        let source = ConfigSource(path: "r.yaml", text: "one\r\ntwo\rthree\nfour")
        #expect(source.line(0) == nil)
        #expect(source.line(1) == "one")
        #expect(source.line(2) == "two")
        #expect(source.line(3) == "three")
        #expect(source.line(4) == "four")
        #expect(source.line(5) == nil)
        #expect(ConfigSource(path: "r.yaml", text: "a\n").line(2) == nil)
    }
}

// MARK: - Loader errors

struct YAMLLoaderTests {
    @Test func loader_whenSyntaxError_reportsLibyamlProblemWithCaret() {
        #expect(
            renderedErrors("inputs:\n  tail:\n    path: a: b\n") == """
                router.yaml:3:12: error: mapping values are not allowed in this context
                    path: a: b
                           ^
                """)
    }

    @Test func loader_whenSyntaxErrorHasContext_namesWhereTheConstructStarted() {
        #expect(
            renderedErrors("a: [1, 2\nb: 3\n") == """
                router.yaml:2:2: error: did not find expected ',' or ']' (while parsing a flow sequence at line 1, \
                column 4)
                b: 3
                 ^
                """)
    }

    @Test func loader_whenQuoteIsNeverClosed_pointsAtTheOpeningQuote() {
        #expect(
            renderedErrors("a: \"unterminated\nb: 1\n") == """
                router.yaml:1:4: error: found unexpected end of stream (while scanning a quoted scalar that starts here)
                a: "unterminated
                   ^
                """)
    }

    @Test func loader_whenTabsIndent_explainsThatTabsAreNotAllowed() {
        #expect(
            renderedErrors("a:\n  b: 1\n\tc: 2\n") == """
                router.yaml:3:1: error: tab characters cannot be used for indentation in YAML; indent with spaces
                \tc: 2
                ^
                """)
    }

    @Test func loader_whenControlCharacter_reportsItsPosition() {
        #expect(
            renderedErrors("a: 1\nb: x\u{7}\n") == """
                router.yaml:2:5: error: control characters are not allowed (U+0007)
                b: x\u{7}
                    ^
                """)
    }

    @Test func loader_whenDuplicateKey_reportsBothLines() {
        let text = """
            server:
              host: a
              port: 1
              port: 2
            limits: {rate: 1, rate: 2}
            server: {}

            """
        #expect(
            renderedErrors(text) == """
                router.yaml:4:3: error: duplicate key 'port' (first defined at line 3)
                  port: 2
                  ^
                router.yaml:5:19: error: duplicate key 'rate' (first defined at line 5)
                limits: {rate: 1, rate: 2}
                                  ^
                router.yaml:6:1: error: duplicate key 'server' (first defined at line 1)
                server: {}
                ^
                """)
    }

    @Test func loader_whenQuotedAndPlainKeysAreEqual_reportsDuplicate() {
        #expect(
            renderedErrors("port: 1\n\"port\": 2\n") == """
                router.yaml:2:1: error: duplicate key 'port' (first defined at line 1)
                "port": 2
                ^
                """)
    }

    @Test func loader_whenAliasIsUndefined_reportsEveryAliasPosition() {
        #expect(
            renderedErrors("a: *missing\nb:\n  - *other\n") == """
                router.yaml:1:4: error: undefined alias '*missing' (no anchor '&missing' is defined before it)
                a: *missing
                   ^
                router.yaml:3:5: error: undefined alias '*other' (no anchor '&other' is defined before it)
                  - *other
                    ^
                """)
    }

    @Test func loader_whenAliasIsUsedBeforeItsAnchor_reportsUndefinedAlias() {
        #expect(
            renderedErrors("a: *x\nb: &x 1\n") == """
                router.yaml:1:4: error: undefined alias '*x' (no anchor '&x' is defined before it)
                a: *x
                   ^
                """)
    }

    @Test func loader_whenAliasIsRecursive_reportsIt() {
        #expect(
            renderedErrors("a: &a\n  <<: *a\n") == """
                router.yaml:2:7: error: alias '*a' refers to a node that contains it (recursive aliases are not \
                supported)
                  <<: *a
                      ^
                """)
    }

    @Test func loader_whenVariableIsUnset_reportsEveryUse() {
        let text = "token: ${TOKEN}\nurl: \"http://${HOST}:80\"\n"
        #expect(
            renderedErrors(text) == """
                router.yaml:1:8: error: environment variable 'TOKEN' is not set (write ${TOKEN:-default} to give a \
                default)
                token: ${TOKEN}
                       ^
                router.yaml:2:6: error: environment variable 'HOST' is not set (write ${HOST:-default} to give a \
                default)
                url: "http://${HOST}:80"
                     ^
                """)
    }

    @Test func loader_whenRequiredVariableIsMissingOrEmpty_reportsItsMessage() {
        let text = "a: ${KEY:?set KEY to the API key}\nb: ${EMPTY:?must not be empty}\n"
        #expect(
            renderedErrors(text, environment: ["EMPTY": ""]) == """
                router.yaml:1:4: error: KEY: set KEY to the API key
                a: ${KEY:?set KEY to the API key}
                   ^
                router.yaml:2:4: error: EMPTY: must not be empty
                b: ${EMPTY:?must not be empty}
                   ^
                """)
    }

    @Test func loader_whenReferenceIsMalformed_reportsIt() {
        let text = "a: ${1BAD}\nb: ${OPEN\nc: \"${X-y}\"\n"
        #expect(
            renderedErrors(text) == """
                router.yaml:1:4: error: invalid variable reference '${1BAD}'
                a: ${1BAD}
                   ^
                router.yaml:2:4: error: invalid variable reference '${OPEN'
                b: ${OPEN
                   ^
                router.yaml:3:4: error: invalid variable reference '${X-y}'
                c: "${X-y}"
                   ^
                """)
    }

    @Test func loader_whenAnchoredValueFailsInterpolation_reportsItOnce() {
        #expect(
            renderedErrors("a: &t ${T}\nb: *t\nc: [*t, *t]\n") == """
                router.yaml:1:4: error: environment variable 'T' is not set (write ${T:-default} to give a default)
                a: &t ${T}
                   ^
                """)
    }

    @Test func loader_whenErrorsOfDifferentKinds_collectsAllInFileOrder() {
        let text = "a: ${NOPE}\na: 2\nb: *nope\n"
        #expect(
            renderedErrors(text) == """
                router.yaml:1:4: error: environment variable 'NOPE' is not set (write ${NOPE:-default} to give a \
                default)
                a: ${NOPE}
                   ^
                router.yaml:2:1: error: duplicate key 'a' (first defined at line 1)
                a: 2
                ^
                router.yaml:3:4: error: undefined alias '*nope' (no anchor '&nope' is defined before it)
                b: *nope
                   ^
                """)
    }

    @Test func loader_whenSecondDocument_reportsItsStart() {
        #expect(
            renderedErrors("a: 1\n---\nb: 2\n") == """
                router.yaml:2:1: error: only one YAML document is allowed
                ---
                ^
                """)
    }

    @Test func loader_whenKeyIsNotAScalar_reportsKeyPosition() {
        #expect(
            renderedErrors("? [a, b]\n: 1\n") == """
                router.yaml:1:3: error: mapping keys must be scalars, but this key is a list
                ? [a, b]
                  ^
                """)
    }

    @Test func loader_whenMergeValueIsNotAMapping_reportsIt() {
        #expect(
            renderedErrors("list: &l [1]\na:\n  <<: 5\nb:\n  <<: [*l]\n") == """
                router.yaml:3:7: error: merge key '<<' expects a mapping or a list of mappings, but found a scalar
                  <<: 5
                      ^
                router.yaml:5:8: error: merge key '<<' expects a mapping or a list of mappings, but this item is a list
                  <<: [*l]
                       ^
                """)
    }

    @Test func loader_whenTagIsNotStandard_rejectsIt() {
        #expect(
            renderedErrors("a: !include other.yaml\n") == """
                router.yaml:1:4: error: unsupported YAML tag '!include' (config files may only use standard tags such \
                as !!str)
                a: !include other.yaml
                   ^
                """)
    }

    @Test func loader_whenNestingIsTooDeep_reportsInsteadOfRecursing() {
        let text = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        let rendered = renderedErrors(text)
        #expect(rendered?.hasPrefix("router.yaml:1:129: error: nesting is too deep (more than 128 levels)\n") == true)
    }

    @Test func loader_whenAliasesExplode_reportsOnceInsteadOfExpanding() throws {
        // "Billion laughs": each level holds ten aliases of the previous one.
        var lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in 1...9 {
            let aliases = Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ")
            lines.append("l\(level): &l\(level) [\(aliases)]")
        }
        // Levels 0-4 amount to 123455 nodes; level 5 passes 1000000 at its eighth alias (line 6, column 45).
        #expect(
            renderedErrors(lines.joined(separator: "\n") + "\n") == """
                router.yaml:6:45: error: aliases expand the document to more than 1000000 nodes
                \(lines[5])
                                                            ^
                """)
    }

    // MARK: Loader successes

    @Test func loader_nestedMapping_recordsKeyAndValuePositions() throws {
        let text = """
            outputs:
              archive:
                path: /var/log/x
                max_size: 10MiB
              stdout: {format: json}

            """
        let root = try parsed(text)
        #expect(position(root.location) == "1:1")
        let outputs = try #require(root["outputs"])
        #expect(position(outputs.keyLocation) == "1:1")
        #expect(position(outputs.value.location) == "2:3")
        let archive = try #require(outputs.value["archive"])
        #expect(position(archive.keyLocation) == "2:3")
        let maxSize = try #require(archive.value["max_size"])
        #expect(position(maxSize.keyLocation) == "4:5")
        #expect(position(maxSize.value.location) == "4:15")
        #expect(maxSize.value.scalar == "10MiB")
        #expect(maxSize.value.location.file == "router.yaml")
        let format = try #require(outputs.value["stdout"]?.value["format"])
        #expect(position(format.keyLocation) == "5:12")
        #expect(position(format.value.location) == "5:20")
        #expect(outputs.value.mapping?.map(\.key) == ["archive", "stdout"])
    }

    @Test func loader_columns_countCharactersNotBytes() throws {
        let root = try parsed("héllo: wörld\nnext: [é, x]\n")
        let entry = try #require(root["héllo"])
        #expect(position(entry.value.location) == "1:8")
        let items = try #require(root["next"]?.value.sequence)
        #expect(items.map { position($0.location) } == ["2:8", "2:11"])
    }

    @Test func loader_sequencesAndScalars_keepDocumentOrderAndQuoting() throws {
        let text = """
            items:
              - plain
              - 'single'
              - "double"
              - |
                literal
              - >
                folded
                text

            """
        let root = try parsed(text)
        #expect(shape(root) == "{items: [\"plain\", \"single\"q, \"double\"q, \"literal\n\"q, \"folded text\n\"q]}")
    }

    @Test func loader_nullSpellings_areNullButQuotedStaysScalar() throws {
        let text = "a: ~\nb: null\nc: Null\nd: NULL\ne:\nf: \"null\"\ng: ''\nh: !!str null\ni: nil\n"
        let root = try parsed(text)
        #expect(
            shape(root)
                == "{a: ~, b: ~, c: ~, d: ~, e: ~, f: \"null\"q, g: \"\"q, h: \"null\", i: \"nil\"}")
    }

    @Test(arguments: ["", "# only a comment\n", "---\n", "~\n", "null\n"])
    func loader_whenDocumentIsEmptyOrNull_returnsNullAtStart(text: String) throws {
        let root = try parsed(text)
        #expect(root.isNull)
        #expect(position(root.location) == "1:1")
    }

    @Test func loader_anchorsAndAliases_resolveScalarsSequencesAndMappings() throws {
        let text = """
            level: &lvl info
            paths: &p [/a, /b]
            tls: &t {cert: c.pem}
            copy:
              level: *lvl
              paths: *p
              tls: *t

            """
        let root = try parsed(text)
        let copy = try #require(root["copy"]).value
        #expect(shape(copy) == "{level: \"info\", paths: [\"/a\", \"/b\"], tls: {cert: \"c.pem\"}}")
        // An aliased node keeps the position of its anchor definition.
        #expect(position(try #require(root["copy"]?.value["tls"]).value.location) == "3:6")
    }

    @Test func loader_mergeKeys_explicitKeysWinAndEarlierSourcesWin() throws {
        let text = """
            base: &base {host: a, port: 1, tls: false}
            extra: &extra {port: 2, retries: 3, host: z}
            single:
              <<: *base
              port: 9
            multi:
              name: m
              <<: [*base, *extra]
              host: explicit

            """
        let root = try parsed(text)
        #expect(shape(try #require(root["single"]).value) == "{host: \"a\", tls: \"false\", port: \"9\"}")
        #expect(
            shape(try #require(root["multi"]).value)
                == "{name: \"m\", port: \"1\", tls: \"false\", retries: \"3\", host: \"explicit\"}")
        // Merged entries keep the positions where they were written.
        let mergedPort = try #require(root["multi"]?.value["port"])
        #expect(position(mergedPort.keyLocation) == "1:23")
    }

    @Test func loader_quotedMergeKey_isAnOrdinaryKey() throws {
        let root = try parsed("\"<<\": {a: 1}\n")
        #expect(shape(root) == "{<<: {a: \"1\"}}")
    }

    @Test func loader_interpolation_expandsSetDefaultEmptyAndDollarEscape() throws {
        let text = """
            host: ${HOST}
            port: ${PORT:-8080}
            empty: ${EMPTY}
            fallback: ${EMPTY:-used}
            price: "$$5 or $5"
            path: "${DIR}/${FILE:-x.log}"
            ${HOST}: key
            seq:
              - ${HOST}
              - '${HOST}'

            """
        let root = try parsed(text, environment: ["HOST": "example.com", "EMPTY": "", "DIR": "/var"])
        #expect(
            shape(root) == """
                {host: "example.com", port: "8080", empty: "", fallback: "used", price: "$5 or $5"q, \
                path: "/var/x.log"q, ${HOST}: "key", seq: ["example.com", "example.com"q]}
                """)
    }

    @Test func loader_interpolatedYAMLSyntax_staysOneScalar() throws {
        let environment = ["V": "a: [b, c]\n- d", "N": "null", "Q": "\"quoted\" # not a comment"]
        let root = try parsed("x: ${V}\ny: ${N}\nz: ${Q}\n", environment: environment)
        #expect(root["x"]?.value.scalar == "a: [b, c]\n- d")
        #expect(root["y"]?.value.scalar == "null")
        #expect(root["z"]?.value.scalar == "\"quoted\" # not a comment")
        #expect(root["x"]?.value.isQuoted == false)
    }

    @Test func loader_aliasedScalarUsedAsKey_isNotInterpolated() throws {
        let root = try parsed("a: &k ${NAME}\n*k : v\n", environment: ["NAME": "n"])
        #expect(shape(root) == "{a: \"n\", ${NAME}: \"v\"}")
    }

    @Test func loader_crlfLineEndings_reportCorrectLines() {
        #expect(
            renderedErrors("a:\r\n  b: 1\r\n  b: 2\r\n") == """
                router.yaml:3:3: error: duplicate key 'b' (first defined at line 2)
                  b: 2
                  ^
                """)
    }

    // MARK: Files

    @Test func load_readsAndParsesFile() throws {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("routerd-yaml-\(UUID().uuidString).yaml")
        try Data("name: ${WHO:-world}\nlist: [1]\n".utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let (source, root) = try YAMLLoader.load(path: url.path, environment: [:])
        #expect(source.path == url.path)
        #expect(source.line(2) == "list: [1]")
        #expect(root["name"]?.value.scalar == "world")
        #expect(root["name"]?.value.location.file == url.path)
    }

    @Test func load_whenFileIsMissing_reportsStrerror() {
        let path = "/nonexistent-routerd-dir/router.yaml"
        do {
            _ = try YAMLLoader.load(path: path, environment: [:])
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "\(path): error: cannot read config file: No such file or directory")
        }
    }

    @Test func load_whenFileIsNotUTF8_reportsPosition() throws {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("routerd-yaml-\(UUID().uuidString).yaml")
        try Data([0x61, 0x3A, 0x20, 0x31, 0x0A, 0x62, 0x3A, 0x20, 0xFF, 0x0A]).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            _ = try YAMLLoader.load(path: url.path, environment: [:])
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "\(url.path):2:4: error: config file is not valid UTF-8 text")
        }
    }
}

// MARK: - Interpolation

struct ConfigInterpolationTests {
    private let environment = ["A": "alpha", "EMPTY": "", "N": "1"]

    @Test(arguments: [
        ("plain text", "plain text"),
        ("${A}", "alpha"),
        ("x${A}y${N}z", "xalphay1z"),
        ("${EMPTY}", ""),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${A:-fallback}", "alpha"),
        ("${MISSING:-}", ""),
        ("${A:?required}", "alpha"),
        ("$$", "$"),
        ("$${A}", "${A}"),
        ("$5 and $", "$5 and $"),
        ("a$b", "a$b"),
        ("${MISSING:-a:b c}", "a:b c"),
    ])
    func expand_whenValid_substitutes(input: String, expected: String) {
        #expect(Interpolation.expand(input, environment: environment) == .success(expected))
    }

    @Test(arguments: [
        ("${MISSING}", "environment variable 'MISSING' is not set (write ${MISSING:-default} to give a default)"),
        ("${MISSING:?give it}", "MISSING: give it"),
        ("${EMPTY:?}", "EMPTY: environment variable is not set or empty"),
        ("${", "invalid variable reference '${'"),
        ("${}", "invalid variable reference '${}'"),
        ("${A", "invalid variable reference '${A'"),
        ("${A B}", "invalid variable reference '${A B}'"),
        ("${9A}", "invalid variable reference '${9A}'"),
        ("${A:+x}", "invalid variable reference '${A:+x}'"),
        ("${A:-${B}}", "invalid variable reference '${A:-${B}'"),
        (
            "ok ${A} then ${MISSING}",
            "environment variable 'MISSING' is not set (write ${MISSING:-default} to give a default)"
        ),
    ])
    func expand_whenInvalid_reportsMessage(input: String, message: String) {
        #expect(Interpolation.expand(input, environment: environment) == .failure(InterpolationError(message: message)))
    }
}

// MARK: - Units

struct ConfigUnitsTests {
    @Test(arguments: [
        ("0", 0), ("65536", 65_536), ("512B", 512),
        ("1KB", 1_000), ("100MB", 100_000_000), ("2GB", 2_000_000_000), ("3TB", 3_000_000_000_000),
        ("1KiB", 1_024), ("4MiB", 4_194_304), ("2GiB", 2_147_483_648), ("1TiB", 1_099_511_627_776),
        ("100mb", 100_000_000), ("4mib", 4_194_304), ("4MIB", 4_194_304), ("1kb", 1_000), ("7b", 7),
        ("1.5GiB", 1_610_612_736), ("0.5KB", 500), ("1.25KiB", 1_280), ("2.000MB", 2_000_000),
        ("10 KiB", 10_240), ("  8MiB\t", 8_388_608),
    ])
    func parseSize_whenValid_returnsBytes(text: String, bytes: Int) {
        #expect(Units.parseSize(text) == .success(bytes))
    }

    @Test(arguments: [
        ("", "empty size (write e.g. 4MiB or 100MB)"),
        ("   ", "empty size (write e.g. 4MiB or 100MB)"),
        ("-1MB", "size must not be negative: '-1MB'"),
        ("10XB", "unknown size unit 'XB' in '10XB' (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"),
        ("10K", "unknown size unit 'K' in '10K' (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"),
        ("MB", "invalid size 'MB' (write a number and a unit, e.g. 4MiB or 100MB)"),
        ("1.MB", "invalid size '1.MB' (write a number and a unit, e.g. 4MiB or 100MB)"),
        ("+1MB", "invalid size '+1MB' (write a number and a unit, e.g. 4MiB or 100MB)"),
        ("1MB2", "invalid size '1MB2' (write a number and a unit, e.g. 4MiB or 100MB)"),
        ("1.5B", "size '1.5B' is not a whole number of bytes"),
        ("0.0001KB", "size '0.0001KB' is not a whole number of bytes"),
        ("10000000TiB", "size '10000000TiB' is too large"),
        ("99999999999999999999", "size '99999999999999999999' is too large"),
        ("1.0000000000000000001KB", "size '1.0000000000000000001KB' has too many decimal places"),
    ])
    func parseSize_whenInvalid_reportsMessage(text: String, message: String) {
        #expect(Units.parseSize(text) == .failure(UnitError(message: message)))
    }

    @Test(arguments: [
        ("0", Duration.zero), ("0s", .zero), ("0.0", .zero),
        ("5s", .seconds(5)), ("250ms", .milliseconds(250)), ("1m", .seconds(60)), ("2h", .seconds(7_200)),
        ("1.5s", .milliseconds(1_500)), ("100us", .microseconds(100)), ("7ns", .nanoseconds(7)),
        ("0.5m", .seconds(30)), ("1.5h", .seconds(5_400)), ("10 ms", .milliseconds(10)), ("5S", .seconds(5)),
        ("250MS", .milliseconds(250)),
    ])
    func parseDuration_whenValid_returnsDuration(text: String, duration: Duration) {
        #expect(Units.parseDuration(text) == .success(duration))
    }

    @Test(arguments: [
        ("5", "missing unit in '5' (use e.g. 5s or 250ms)"),
        ("1.5", "missing unit in '1.5' (use e.g. 5s or 250ms)"),
        ("", "empty duration (write e.g. 5s or 250ms)"),
        ("-5s", "duration must not be negative: '-5s'"),
        ("5d", "unknown duration unit 'd' in '5d' (use ns, us, ms, s, m or h)"),
        ("5sec", "unknown duration unit 'sec' in '5sec' (use ns, us, ms, s, m or h)"),
        ("1h30m", "invalid duration '1h30m' (write a number and a unit, e.g. 5s or 250ms)"),
        ("1.5ns", "duration '1.5ns' is not a whole number of nanoseconds"),
        ("9999999h", "duration '9999999h' is too large"),
    ])
    func parseDuration_whenInvalid_reportsMessage(text: String, message: String) {
        #expect(Units.parseDuration(text) == .failure(UnitError(message: message)))
    }

    @Test(arguments: [
        (0, "0B"), (1, "1B"), (512, "512B"), (1_000, "1KB"), (1_024, "1KiB"), (4_194_304, "4MiB"),
        (100_000_000, "100MB"), (1_536, "1536B"), (1_024_000, "1024KB"), (1_099_511_627_776, "1TiB"),
        (5_000_000_000_000, "5TB"), (-5, "-5B"),
    ])
    func formatSize_rendersShortestExactUnit(bytes: Int, text: String) {
        #expect(Units.formatSize(bytes) == text)
    }

    @Test(arguments: [0, 1, 999, 1_000, 1_024, 1_536, 65_536, 4_194_304, 100_000_000, 1_610_612_736, Int.max])
    func formatSize_roundTripsThroughParseSize(bytes: Int) {
        #expect(Units.parseSize(Units.formatSize(bytes)) == .success(bytes))
    }

    @Test(arguments: [
        (Duration.zero, "0s"), (.seconds(5), "5s"), (.milliseconds(250), "250ms"), (.seconds(60), "1m"),
        (.seconds(7_200), "2h"), (.seconds(90), "90s"), (.milliseconds(1_500), "1500ms"),
        (.microseconds(100), "100us"), (.nanoseconds(7), "7ns"), (.seconds(-5), "-5s"),
    ])
    func formatDuration_rendersShortestExactUnit(duration: Duration, text: String) {
        #expect(Units.formatDuration(duration) == text)
    }

    @Test(arguments: [
        Duration.zero, .nanoseconds(1), .microseconds(3), .milliseconds(250), .seconds(1), .seconds(59),
        .seconds(3_600), .seconds(86_400), .milliseconds(1_500),
    ])
    func formatDuration_roundTripsThroughParseDuration(duration: Duration) {
        #expect(Units.parseDuration(Units.formatDuration(duration)) == .success(duration))
    }
}

// MARK: - Edit distance

struct ConfigEditDistanceTests {
    @Test(arguments: [
        ("", "", 0), ("", "abc", 3), ("abc", "", 3), ("kitten", "sitting", 3), ("max_size", "max_sise", 1),
        ("flaw", "lawn", 2), ("same", "same", 0), ("héllo", "hello", 1),
    ])
    func distance_isLevenshtein(a: String, b: String, expected: Int) {
        #expect(EditDistance.distance(a, b) == expected)
        #expect(EditDistance.distance(b, a) == expected)
    }

    @Test func suggestion_whenCloseTypo_returnsClosestCandidate() {
        let options = ["path", "max_size", "max_files", "compress"]
        #expect(EditDistance.suggestion(for: "max_sise", among: options) == "max_size")
        #expect(EditDistance.suggestion(for: "compres", among: options) == "compress")
        #expect(EditDistance.suggestion(for: "pth", among: options) == "path")
    }

    @Test func suggestion_whenTooFar_returnsNil() {
        let options = ["path", "max_size", "compress"]
        #expect(EditDistance.suggestion(for: "colour", among: options) == nil)
        #expect(EditDistance.suggestion(for: "xy", among: options) == nil)
        #expect(EditDistance.suggestion(for: "anything", among: []) == nil)
    }

    @Test func suggestion_threshold_scalesWithNameLength() {
        // 12 or 13 characters allow 3 edits (the cap); 5 characters allow 1; 2 characters allow 1 (the minimum).
        #expect(EditDistance.suggestion(for: "buffer_sizeX", among: ["bufer_sze"]) == "bufer_sze")
        #expect(EditDistance.suggestion(for: "buffer_sizeXY", among: ["bufer_sze"]) == nil)
        #expect(EditDistance.suggestion(for: "formt", among: ["format"]) == "format")
        #expect(EditDistance.suggestion(for: "fmt", among: ["format"]) == nil)
        #expect(EditDistance.suggestion(for: "ab", among: ["ac"]) == "ac")
    }

    @Test func suggestion_onTie_prefersFirstCandidate() {
        #expect(EditDistance.suggestion(for: "cat", among: ["bat", "hat"]) == "bat")
    }
}
