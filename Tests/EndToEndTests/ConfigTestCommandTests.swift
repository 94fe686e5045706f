import Foundation
import Testing

/// `routerd test`: config unit tests, run by the real binary on configs and test files written here.
@Suite("routerd test: config unit tests")
struct ConfigTestCommandTests {
    static let config = """
        inputs:
          udp_in: { type: udp, port: 0 }
        filters:
          valid: { type: validate_json, inputs: [udp_in] }
          errors: { type: match_level, inputs: [valid], levels: [ERROR] }
          acks: { type: ack, inputs: [errors] }
        outputs:
          errors_now: { type: file, inputs: [acks], path: /nonexistent/errors.log }
          server_log: { type: file, inputs: [errors.unmatched], path: /nonexistent/server.log }
          dead_letters: { type: file, inputs: [valid.invalid], path: /nonexistent/dead.log }
        """

    static let tests = """
        tests:
          - name: errors are written at once and acked
            entries:
              - '{"timestamp":"t","sequence":1,"app":"a","level":"ERROR","message":"m","host":"h"}'
              - '{"timestamp":"t","sequence":2,"app":"a","level":"INFO","message":"m","host":"h"}'
              - raw: "\\xff\\xfe"
            expect:
              errors_now: ['{"timestamp":"t","sequence":1,"app":"a","level":"ERROR","message":"m","host":"h"}']
              server_log: [ { fields: { sequence: 2, level: INFO } } ]
              dead_letters: [ { raw: "\\xff\\xfe", reason: not_utf8 } ]
            acked: [1]
        """

    private func write(_ files: [String: String]) throws -> URL {
        let directory = try TestPaths.temporaryDirectory()
        for (name, text) in files {
            try text.write(to: directory.appendingPathComponent(name), atomically: false, encoding: .utf8)
        }
        return directory
    }

    @Test func test_whenTheConfigDoesWhatTheTestsSay_passesAndExitsZeroTouchingNoFile() throws {
        let directory = try write(["router.yaml": Self.config, "router.test.yaml": Self.tests])
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try runRouterd([
            "test", "-c", directory.appendingPathComponent("router.yaml").path,
            directory.appendingPathComponent("router.test.yaml").path,
        ])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout == "routerd test: 1 passed, 0 failed\n")
        #expect(result.stderr == "")
        // The outputs write to /nonexistent: had they been built, the run would have failed.
    }

    @Test func test_whenTheConfigIsBroken_printsTheDiffPerOutputAndExitsOne() throws {
        // The level split now sends WARNING to errors_now too, and the ack covers it: two outputs differ, and the acks.
        let broken = Self.config.replacingOccurrences(of: "levels: [ERROR]", with: "levels: [ERROR, INFO]")
            .replacingOccurrences(
                of: "acks: { type: ack, inputs: [errors] }",
                with: "acks: { type: ack, inputs: [errors], levels: [ERROR, INFO] }")
        let directory = try write(["router.yaml": broken, "router.test.yaml": Self.tests])
        defer { try? FileManager.default.removeItem(at: directory) }
        let testPath = directory.appendingPathComponent("router.test.yaml").path
        let result = try runRouterd(["test", "-c", directory.appendingPathComponent("router.yaml").path, testPath])
        #expect(result.status == 1)
        let expected = """
            FAIL \(testPath):2:5: errors are written at once and acked
                errors_now: expected 1 entry, received 2 entries
                    {"timestamp":"t","sequence":1,"app":"a","level":"ERROR","message":"m","host":"h"}
                  + {"timestamp":"t","sequence":2,"app":"a","level":"INFO","message":"m","host":"h"}
                server_log: expected 1 entry, received 0 entries
                  - fields {sequence: 2, level: INFO}   (\(testPath):9:21)
                acked: expected [1], heard [1, 2]
            routerd test: 0 passed, 1 failed

            """
        #expect(result.stdout == expected)
    }

    @Test func test_whenADeadLetterReasonChanges_showsTheReasonInTheDiff() throws {
        // Requiring a field the entry lacks turns the INFO entry into a dead letter with its reason.
        let broken = Self.config.replacingOccurrences(
            of: "valid: { type: validate_json, inputs: [udp_in] }",
            with: "valid: { type: validate_json, inputs: [udp_in], require: [level, duration_ms] }")
        let directory = try write(["router.yaml": broken, "router.test.yaml": Self.tests])
        defer { try? FileManager.default.removeItem(at: directory) }
        let testPath = directory.appendingPathComponent("router.test.yaml").path
        let result = try runRouterd(["test", "-c", directory.appendingPathComponent("router.yaml").path, testPath])
        #expect(result.status == 1)
        #expect(result.stdout.contains("    dead_letters: expected 1 entry, received 3 entries\n"))
        #expect(
            result.stdout.contains(
                "      + {\"timestamp\":\"t\",\"sequence\":2,\"app\":\"a\",\"level\":\"INFO\",\"message\":\"m\","
                    + "\"host\":\"h\"}   (reason: missing_field, detail: missing field 'duration_ms')\n"))
        #expect(result.stdout.contains("        \\xff\\xfe   (reason: not_utf8)\n"))
        #expect(result.stdout.contains("    acked: expected [1], heard []\n"))
    }

    @Test func test_whenAnAckedEntryLeavesByAPortNothingReads_itIsNackedAsTheRuntimeDoes() throws {
        let config = """
            inputs:
              udp_in: { type: udp, port: 0 }
            filters:
              acks: { type: ack, inputs: [udp_in], levels: [ERROR, INFO] }
              errors: { type: match_level, inputs: [acks], levels: [ERROR] }
            outputs:
              errors_now: { type: file, inputs: [errors], path: /nonexistent/errors.log }
            """
        let tests = """
            tests:
              - name: the INFO entry reaches no output
                entries:
                  - '{"sequence":1,"level":"ERROR"}'
                  - '{"sequence":2,"level":"INFO"}'
                expect:
                  errors_now: [ { fields: { sequence: 1 } } ]
                  errors.unmatched: [ { fields: { sequence: 2 } } ]
                acked: [1]
                nacked: [ { sequence: 2, reason: no output took it } ]
            """
        let directory = try write(["router.yaml": config, "router.test.yaml": tests])
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try runRouterd([
            "test", "-c", directory.appendingPathComponent("router.yaml").path,
            directory.appendingPathComponent("router.test.yaml").path,
        ])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout == "routerd test: 1 passed, 0 failed\n")
    }

    @Test func test_whenTheTestFileHasMistakes_reportsEachWithLineColumnAndSourceLine() throws {
        let tests = """
            tests:
              - name: one
                input: udp_inn
                entries: ['x']
                expect:
                  server_lg: []
                  dead_letters: [ { raw: "\\u0100" } ]
                acked: [one]
              - name: two
                entires: []
            """
        let directory = try write(["router.yaml": Self.config, "bad.test.yaml": tests])
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("bad.test.yaml").path
        let result = try runRouterd(["test", "-c", directory.appendingPathComponent("router.yaml").path, path])
        #expect(result.status == 1)
        let expected = """
            \(path):7:30: error: tests 'one'.expect.dead_letters[0].raw: 'Ā' is not a byte: raw entries take \
            U+0000...U+00FF, one byte each (write \\xNN); write UTF-8 text as a plain string entry
                  dead_letters: [ { raw: "\\u0100" } ]
                                         ^
            \(path):8:13: error: tests 'one'.acked: must be a sequence number
                acked: [one]
                        ^
            \(path):9:5: error: tests 'two': a test needs `entries:` to feed
              - name: two
                ^
            \(path):10:5: error: tests[1]: unknown key 'entires' (did you mean 'entries'?)
                entires: []
                ^

            """
        #expect(result.stderr == expected)
        #expect(result.stdout == "routerd test: 0 passed, 0 failed, 1 test file with errors\n")

        // Once the file reads, the names it uses are checked against the config, each with its position.
        let fixed = tests.replacingOccurrences(of: "\\u0100", with: "\\xff").replacingOccurrences(
            of: "acked: [one]", with: "acked: [1]"
        ).replacingOccurrences(of: "entires: []", with: "entries: []\n    expect: { server_log: [] }")
        try fixed.write(toFile: path, atomically: false, encoding: .utf8)
        let second = try runRouterd(["test", "-c", directory.appendingPathComponent("router.yaml").path, path])
        #expect(second.status == 1)
        let names = """
            \(path):3:12: error: tests 'one'.input: the config has no input or filter 'udp_inn' (did you mean 'udp_in'?)
                input: udp_inn
                       ^
            \(path):6:7: error: tests 'one'.expect: the config has no stage or port 'server_lg' (did you mean \
            'server_log'?)
                  server_lg: []
                  ^

            """
        #expect(second.stderr == names)
    }

    @Test func test_everyShippedExampleHasTestsAndTheyPass() throws {
        let examples = TestPaths.packageRoot.appendingPathComponent("examples")
        let configs = try FileManager.default.contentsOfDirectory(atPath: examples.path).filter {
            $0.hasSuffix(".yaml")
        }
        #expect(configs.count >= 6)
        for config in configs.sorted() {
            let name = String(config.dropLast(".yaml".count))
            let testFile = examples.appendingPathComponent("tests/\(name).test.yaml").path
            #expect(FileManager.default.fileExists(atPath: testFile), "examples/\(config) has no tests")
            let result = try runRouterd(["test", "-c", examples.appendingPathComponent(config).path, testFile])
            #expect(result.status == 0, "examples/\(config):\n\(result.stdout)\n\(result.stderr)")
            #expect(result.stdout.hasSuffix(" 0 failed\n") && !result.stdout.contains("routerd test: 0 passed"))
        }
    }
}
