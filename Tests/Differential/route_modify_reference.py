#!/usr/bin/env python3
"""Reference evaluator for routerd's `route` and `modify` filters, in a few lines over json.loads.

    generate --seed S --cases C --entries N --out DIR   writes DIR/case-K.yaml (a config with a `route` stage `r`
                                                        and a `modify` stage `m`) and DIR/case-K.jsonl (entries)
    check --out DIR                                     reads DIR/case-K.route (one line per entry: the ports routerd
                                                        chose, comma-separated) and DIR/case-K.modify (per entry: the
                                                        entry routerd wrote, or FAILED), and compares each with what
                                                        this file computes; exit 1 with the first differences.

The Swift test RouteModifyDifferentialTests drives it (200,000 entries in `make test`; ROUTERD_DIFF_ENTRIES=5000000
for millions). The semantics are those documented in docs/stages.md; this file is their executable statement.
"""
import json
import random
import re
import sys

MISSING = object()
NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")


def json_number(text):
    return float(text) if NUMBER.match(text) else None


def get(entry, path):
    value = entry
    for name in path.split("."):
        if not isinstance(value, dict) or name not in value:
            return MISSING
        value = value[name]
    return value


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def equals(value, text):
    if value is MISSING:
        return False
    if isinstance(value, bool):
        return text == ("true" if value else "false")
    if value is None:
        return text == "null"
    if isinstance(value, str):
        return value == text
    if is_number(value):
        number = json_number(text)
        return number is not None and float(value) == number
    return False


def holds(condition, entry):
    """A condition is a dict; every key in it must hold (field tests, all, any, not)."""
    value = get(entry, condition["field"]) if "field" in condition else MISSING
    for key, operand in condition.items():
        if key == "field":
            continue
        if key == "all":
            ok = all(holds(c, entry) for c in operand)
        elif key == "any":
            ok = any(holds(c, entry) for c in operand)
        elif key == "not":
            ok = not holds(operand, entry)
        elif key == "equals":
            ok = equals(value, operand)
        elif key == "not_equals":
            ok = not equals(value, operand)
        elif key == "in":
            ok = any(equals(value, item) for item in operand)
        elif key == "exists":
            ok = (value is not MISSING) == operand
        elif key in ("greater_than", "less_than"):
            bound = float(operand)
            ok = is_number(value) and (float(value) > bound if key == "greater_than" else float(value) < bound)
        elif key in ("prefix", "suffix", "contains", "matches"):
            if not isinstance(value, str):
                ok = False
            elif key == "prefix":
                ok = value.startswith(operand)
            elif key == "suffix":
                ok = value.endswith(operand)
            elif key == "contains":
                ok = operand in value
            else:
                ok = re.search(operand, value) is not None
        else:
            raise ValueError(key)
        if not ok:
            return False
    return True


def route(routes, mode, text):
    try:
        entry = json.loads(text)
    except ValueError:
        entry = None
    if not isinstance(entry, dict):
        entry = {}  # not an object: no fields
    ports = []
    for name, condition in routes:
        if holds(condition, entry):
            ports.append(name)
            if mode == "first":
                break
    return ports or ["unmatched"]


class Failed(Exception):
    pass


def parent_of(entry, path, create):
    names = path.split(".")
    value = entry
    for name in names[:-1]:
        if name not in value:
            if not create:
                return None, names[-1]
            value[name] = {}
        elif not isinstance(value[name], dict):
            if create:
                raise Failed()
            return None, names[-1]
        value = value[name]
    return value, names[-1]


def modify(changes, text, sender):
    """The object routerd must write, or None when the entry must go to `failed`."""
    try:
        entry = json.loads(text)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    try:
        for path, new in changes["rename"]:
            parent, name = parent_of(entry, path, create=False)
            if parent is not None and name in parent:
                parent[new] = parent.pop(name)
        for path in changes["remove"]:
            parent, name = parent_of(entry, path, create=False)
            if parent is not None:
                parent.pop(name, None)
        for path, value in changes["set"]:
            parent, name = parent_of(entry, path, create=True)
            parent[name] = value
        for path, pattern, replacement in changes["redact"]:
            parent, name = parent_of(entry, path, create=False)
            if parent is None or name not in parent:
                continue
            if not isinstance(parent[name], str):
                raise Failed()
            parent[name] = re.sub(pattern, lambda _: replacement, parent[name])
        if changes.get("add_sender"):
            parent, name = parent_of(entry, changes["add_sender"], create=True)
            parent[name] = sender
    except Failed:
        return None
    return entry


def same(a, b):
    """Equality that tells true from 1 and 1 from 1.0, as JSON does."""
    if type(a) is not type(b):
        return is_number(a) and is_number(b) and float(a) == float(b) and not (isinstance(a, bool) or isinstance(b, bool))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


# ---- generation ----

FIELDS = ["app", "level", "host", "message", "duration_ms", "trace.id", "meta.region", "meta.zone.name", "flag",
          "count", "missing.deep", "tags"]
WORDS = ["billing", "web", "auth", "edge-1", "edge-2", "node-1", "db timeout", "login failed", "Login FAILED for bob",
         "card 4111111111111111 ok", "token=abc123 sent", "été", "naïve café", "x\"y", "back\\slash", "tab\there",
         "line\nbreak", "", "DEBUG", "ERROR", "INFO", "1000", "12.5", "true", "null", "ünïcödé ✓", "emoji 🎉"]
NUMBERS = [0, 1, -1, 999, 1000, 1001, 12.5, 1e3, -0.5, 123456789012, 2.5e-3]
PATTERNS = ["(?i)login failed", "^db", "timeout$", "[0-9]{3,}", "err(or)?", r"\bnode-[12]\b", "été", "(?i)CAFÉ",
            r"\d+\.\d+", "a|b", r"^\w+$"]
REDACTIONS = [("message", "[0-9]{4}", "#"), ("message", "(?i)token=\\w+", "token=[redacted]"),
              ("host", "node", "n"), ("trace.id", "[a-f]", "*"), ("meta.region", "eu", "EU")]


def random_value(rng, depth=0):
    kind = rng.random()
    if kind < 0.45:
        return rng.choice(WORDS)
    if kind < 0.75:
        return rng.choice(NUMBERS)
    if kind < 0.82:
        return rng.choice([True, False, None])
    if kind < 0.9 and depth < 2:
        return {rng.choice(["id", "region", "zone", "name"]): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if depth < 2:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return rng.choice(WORDS)


def random_entry(rng):
    entry = {}
    for key in ["timestamp", "sequence", "app", "level", "message", "host", "duration_ms", "trace", "meta", "flag",
                "count", "tags", "token"]:
        if rng.random() < 0.75:
            if key == "trace":
                entry[key] = {"id": rng.choice(["abc", "f00d", "", 7])} if rng.random() < 0.8 else rng.choice(WORDS)
            elif key == "meta":
                entry[key] = {"region": rng.choice(["eu-1", "us-2", 3]), "zone": {"name": rng.choice(["a", "b"])}} \
                    if rng.random() < 0.8 else random_value(rng)
            elif key == "level":
                entry[key] = rng.choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "error", 3])
            elif key == "sequence":
                entry[key] = rng.randint(0, 10 ** 6)
            else:
                entry[key] = random_value(rng)
    roll = rng.random()
    if roll < 0.02:
        return json.dumps([1, 2])
    if roll < 0.03:
        return '{"app": "cut'
    if roll < 0.04:
        return json.dumps(rng.choice(WORDS))
    separators = rng.choice([(",", ":"), (", ", ": "), (" ,", " : ")])
    return json.dumps(entry, ensure_ascii=rng.random() < 0.5, separators=separators)


def random_condition(rng, depth=0):
    roll = rng.random()
    if depth < 2 and roll < 0.2:
        key = rng.choice(["all", "any"])
        return {key: [random_condition(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if depth < 2 and roll < 0.3:
        return {"not": random_condition(rng, depth + 1)}
    field = rng.choice(FIELDS)
    test = rng.choice(["equals", "not_equals", "in", "prefix", "suffix", "contains", "matches", "exists",
                       "greater_than", "less_than"])
    if test == "in":
        operand = [scalar_text(rng) for _ in range(rng.randint(1, 3))]
    elif test == "exists":
        operand = rng.random() < 0.5
    elif test in ("greater_than", "less_than"):
        operand = repr(rng.choice(NUMBERS))
    elif test == "matches":
        operand = rng.choice(PATTERNS)
    elif test in ("prefix", "suffix", "contains"):
        word = rng.choice(WORDS)
        operand = word[: rng.randint(0, len(word))] if test == "prefix" else word[rng.randint(0, len(word)):]
    else:
        operand = scalar_text(rng)
    condition = {"field": field, test: operand}
    return condition


def scalar_text(rng):
    value = rng.choice(WORDS + [str(n) for n in NUMBERS] + ["true", "false", "null"])
    return value


def yaml_scalar(value):
    """A double-quoted YAML scalar (JSON's string syntax is YAML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def yaml_condition(condition):
    parts = []
    for key, operand in condition.items():
        if key in ("all", "any"):
            parts.append(f"{key}: [" + ", ".join(yaml_condition(c) for c in operand) + "]")
        elif key == "not":
            parts.append(f"not: {yaml_condition(operand)}")
        elif key == "in":
            parts.append("in: [" + ", ".join(yaml_scalar(v) for v in operand) + "]")
        else:
            parts.append(f"{key}: {yaml_scalar(operand)}")
    return "{" + ", ".join(parts) + "}"


def random_changes(rng):
    paths = ["app", "host", "token", "meta.region", "meta.zone.name", "trace.id", "new.nested.field", "level", "count"]
    changes = {"rename": [], "remove": [], "set": [], "redact": [], "add_sender": None}
    used = set()
    for _ in range(rng.randint(0, 2)):
        path = rng.choice(paths)
        if path not in used:
            used.add(path)
            changes["rename"].append((path, rng.choice(["renamed", "host", "app2", "message"])))
    changes["remove"] = rng.sample(paths, rng.randint(0, 2))
    for path in rng.sample(paths, rng.randint(1, 3)):
        changes["set"].append((path, rng.choice(["prod", 3, 2.5, True, None, "quoted 7", "ü"])))
    changes["redact"] = rng.sample(REDACTIONS, rng.randint(0, 2))
    if rng.random() < 0.5:
        changes["add_sender"] = rng.choice(["sender", "meta.sender"])
    return changes


def yaml_changes(changes):
    lines = []
    if changes["rename"]:
        lines.append("rename: {" + ", ".join(f"{json.dumps(p)}: {json.dumps(n)}" for p, n in changes["rename"]) + "}")
    if changes["remove"]:
        lines.append("remove: [" + ", ".join(json.dumps(p) for p in changes["remove"]) + "]")
    if changes["set"]:
        items = []
        for path, value in changes["set"]:
            if value is None:
                text = "null"
            elif isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (int, float)):
                text = repr(value)
            else:
                text = json.dumps(value, ensure_ascii=False)
            items.append(f"{json.dumps(path)}: {text}")
        lines.append("set: {" + ", ".join(items) + "}")
    if changes["redact"]:
        lines.append("redact: [" + ", ".join(
            "{field: %s, pattern: %s, replacement: %s}" % (json.dumps(f), json.dumps(p), json.dumps(r))
            for f, p, r in changes["redact"]) + "]")
    if changes["add_sender"]:
        lines.append(f"add_sender: {changes['add_sender']}")
    return lines


def sender_of(index):
    """The sender address the Swift test gives entry `index`."""
    return f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}:{1000 + index % 50000}"


def generate(seed, cases, entries, out):
    rng = random.Random(seed)
    per_case = max(1, entries // cases)
    for case in range(cases):
        routes = [(f"r{i}", random_condition(rng)) for i in range(rng.randint(1, 12))]
        mode = rng.choice(["all", "first"])
        changes = random_changes(rng)
        config = ["inputs:", "  in: {type: udp, port: 0}", "filters:", "  r:", "    type: route", "    inputs: [in]",
                  f"    mode: {mode}", "    routes:"]
        config += [f"      {name}: {yaml_condition(condition)}" for name, condition in routes]
        config += ["  m:", "    type: modify", "    inputs: [in]"] + ["    " + line for line in yaml_changes(changes)]
        reads = [f"r.{name}" for name, _ in routes] + ["r.unmatched", "m", "m.failed"]
        config += ["outputs:", "  o: {type: stdout, inputs: [" + ", ".join(reads) + "]}"]
        with open(f"{out}/case-{case}.yaml", "w", encoding="utf-8") as file:
            file.write("\n".join(config) + "\n")
        with open(f"{out}/case-{case}.json", "w", encoding="utf-8") as file:
            json.dump({"routes": routes, "mode": mode, "changes": changes}, file)
        with open(f"{out}/case-{case}.jsonl", "w", encoding="utf-8") as file:
            for _ in range(per_case):
                file.write(random_entry(rng) + "\n")
    with open(f"{out}/cases", "w") as file:
        file.write(str(cases))


def check(out):
    cases = int(open(f"{out}/cases").read())
    problems = []
    checked = 0
    for case in range(cases):
        spec = json.load(open(f"{out}/case-{case}.json", encoding="utf-8"))
        routes = [(name, condition) for name, condition in spec["routes"]]
        entries = open(f"{out}/case-{case}.jsonl", encoding="utf-8").read().split("\n")[:-1]
        decisions = open(f"{out}/case-{case}.route", encoding="utf-8").read().split("\n")[:-1]
        modified = open(f"{out}/case-{case}.modify", encoding="utf-8").read().split("\n")[:-1]
        if len(decisions) != len(entries) or len(modified) != len(entries):
            problems.append(f"case {case}: {len(entries)} entries, {len(decisions)} decisions, {len(modified)} outputs")
            continue
        for index, text in enumerate(entries):
            checked += 1
            want = route(routes, spec["mode"], text)
            got = decisions[index].split(",") if decisions[index] else []
            if got != want:
                problems.append(f"case {case} entry {index}: route chose {got}, reference {want}\n  entry: {text}")
            expected = modify(spec["changes"], text, sender_of(index))
            actual = modified[index]
            if expected is None:
                if actual != "FAILED":
                    problems.append(f"case {case} entry {index}: modify wrote {actual}, reference: failed\n  entry: {text}")
                continue
            if actual == "FAILED":
                problems.append(f"case {case} entry {index}: modify failed, reference {json.dumps(expected)}\n  entry: {text}")
                continue
            try:
                parsed = json.loads(actual)
            except ValueError as error:
                problems.append(f"case {case} entry {index}: modify wrote invalid JSON ({error}): {actual}")
                continue
            if not same(parsed, expected):
                problems.append(f"case {case} entry {index}: modify wrote {actual}\n  reference {json.dumps(expected)}"
                                f"\n  entry: {text}")
    if problems:
        print(f"{len(problems)} differences in {checked} entries; the first:")
        print("\n".join(problems[:10]))
        return 1
    print(f"{checked} entries: route and modify agree with the reference")
    return 0


def main(argv):
    args = dict(zip(argv[2::2], argv[3::2]))
    if argv[1] == "generate":
        generate(int(args.get("--seed", "1")), int(args.get("--cases", "20")), int(args.get("--entries", "200000")),
                 args["--out"])
        return 0
    if argv[1] == "check":
        return check(args["--out"])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
