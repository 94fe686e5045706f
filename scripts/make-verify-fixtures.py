#!/usr/bin/env python3
"""Writes Tests/StageTests/Fixtures/verify/cases.json: data-diode messages made the way the seed makes them.

Each message is {"client_id", "text", "token", "checksum"} (plus extra fields in the checksum cases): `token` is
a PyJWT HS256 token, `checksum` the MD5 hex digest of json.dumps(message_without_checksum, sort_keys=True). Every
case names what routerd's `verify` filter must do with it ("pass" or a rejection reason) and, for JSON objects, the
exact bytes Python's json.dumps(..., sort_keys=True) writes for it, which routerd's serializer must reproduce. A
case may carry `rules` (issuer, audience, require, leeway_seconds): the verify options it is judged with, which are
the jwt.decode arguments of the same names. Without them, the seed's receiver's own call:
jwt.decode(token, key, algorithms=["HS256"]).

Every label is checked here against the seed receiver's logic run with the real PyJWT at the frozen time NOW (its
clock patched), except the few cases whose notes say why routerd differs. Tokens are made for NOW, which the tests
use as the arrival time, so the committed fixtures never expire. Needs PyJWT (pip install PyJWT). Run from
anywhere; CI does not run it:

    python3 scripts/make-verify-fixtures.py
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import random
import struct
import sys
import warnings

import jwt

# PyJWT warns about the `none` algorithm and short HS512 keys: both are made on purpose here.
warnings.simplefilter("ignore")

SECRET = "fixture-secret-for-routerd-verify-tests-0123456789"
ISSUER = "udp_client"
NOW = 1_800_000_000  # the receive time the tests give their batches (2027-01-15T08:00:00Z)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "StageTests", "Fixtures", "verify")


def token(claims=None, secret=SECRET, algorithm="HS256", drop=(), headers=None):
    # The seed's client signs {"iss": "udp_client", "iat": now, "exp": now + 30}.
    payload = {"client_id": "sensor-1", "iss": ISSUER, "iat": NOW - 2, "exp": NOW + 28}
    payload.update(claims or {})
    for name in drop:
        payload.pop(name, None)
    return jwt.encode(payload, secret, algorithm=algorithm, headers=headers)


def dumps_sorted(obj):
    return json.dumps(obj, sort_keys=True)


def checksum(obj):
    return hashlib.md5(dumps_sorted(obj).encode()).hexdigest()


def seed_message(text="reading 42", client_id=1, tok="@default@", extra=None):
    # The seed's client sends an integer client_id.
    message = {"client_id": client_id, "text": text, "token": token() if tok == "@default@" else tok}
    message.update(extra or {})
    message["checksum"] = checksum(message)
    return message


cases = []


def add(name, entry, expect, note="", rules=None):
    if isinstance(entry, str):
        entry = entry.encode("utf-8", "surrogatepass")
    case = {"name": name, "expect": expect, "entry_base64": base64.b64encode(entry).decode()}
    if rules:
        case["rules"] = rules
    try:
        case["entry"] = entry.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # What Python's json.dumps(..., sort_keys=True) writes for the entry without its checksum, when it is an object.
    try:
        obj = json.loads(entry.decode("utf-8"))
        if isinstance(obj, dict):
            obj.pop("checksum", None)
            case["dumps"] = dumps_sorted(obj)
    except (ValueError, UnicodeDecodeError):
        pass
    if note:
        case["note"] = note
    cases.append(case)


def add_message(name, message, expect, ensure_ascii=True, note="", rules=None):
    add(name, json.dumps(message, ensure_ascii=ensure_ascii), expect, note, rules)


def add_template(name, template, expect, tok=None, note=""):
    """A hand-written JSON text with @TOKEN@ and @CHECKSUM@ placeholders; the checksum is computed by Python from
    json.loads of the text, exactly as the seed's receiver would recompute it."""
    text = template.replace("@TOKEN@", tok if tok is not None else token())
    obj = json.loads(text.replace("@CHECKSUM@", "0" * 32))
    obj.pop("checksum", None)
    add(name, text.replace("@CHECKSUM@", checksum(obj)), expect, note)


# --- Messages that pass ---------------------------------------------------------------------------------------------

add_message("valid_plain", seed_message(), "pass")
add_message("valid_unicode_raw", seed_message("Salom dunyo \u2014 \u043f\u0440\u0438\u0432\u0435\u0442 \u65e5\u672c \U0001F600 caf\u00e9"), "pass", ensure_ascii=False)
add_message("valid_unicode_escaped", seed_message("Salom dunyo \u2014 \u043f\u0440\u0438\u0432\u0435\u0442 \u65e5\u672c \U0001F600 caf\u00e9"), "pass")
add_message("valid_escapes", seed_message('quote " backslash \\ slash / nl \n cr \r tab \t bs \b ff \f nul \x00 us \x1f del \x7f nbsp \u00a0 bom \ufeff'), "pass")
add_message("valid_escapes_raw", seed_message('quote " backslash \\ nl \n del \x7f \u00a0 \u2028 \U0010ffff'), "pass", ensure_ascii=False)
add_message(
    "valid_nested",
    seed_message(extra={"meta": {"z": 1, "a": {"y": [1, {"b": 2, "a": 1}, [], {}], "x": None}, "\u00e9": True, "\U0001F600": False, "\uffff": 1, "\ue000": 2, "A": [None, True, False]}}),
    "pass", ensure_ascii=False)
add_message("valid_key_order", seed_message(extra={"B": 1, "a": 2, "_": 3, "A": 4, "aa": 5, "a\u0000": 6, "": 7, " ": 8, "~": 9, "\u007f": 10}), "pass")
add_message("valid_lone_surrogates", seed_message("lone \ud800 and \udfff", extra={"\ud800": 1, "\U0001F600": 2, "\uffff": 3}), "pass")
add_message(
    "valid_floats",
    seed_message(extra={"floats": [0.1, 1e-05, 1e16, 1e15, 1.5, -0.0, 0.0, 5e-324, 1.7976931348623157e308, 123456789.123456789, 1e22, 1e-07, 0.0001, 0.001, 100.0, 2.0 ** 53, 2.0 ** 53 + 2, 1 / 3, -2.5e-300, 9.999999999999999e15, 1e16 - 2]}),
    "pass")
rng = random.Random(7)
randoms = []
while len(randoms) < 600:
    value = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
    if value == value and abs(value) != float("inf"):
        randoms.append(value)
randoms += [rng.uniform(-1e6, 1e6) for _ in range(200)] + [rng.random() * 10 ** rng.randint(-30, 30) for _ in range(200)]
add_message("valid_random_floats", seed_message(extra={"floats": randoms}), "pass")
add_message("valid_big_ints", seed_message(extra={"ints": [0, -1, 2**63, -(2**63) - 1, 2**64, -(2**100), 10**40, int("9" * 4300)]}), "pass")
add_template(
    "valid_whitespace_and_escaped_keys",
    ' \t\r\n{ "\\u0063lient_id" : "sensor-1" ,\n "te\\u0078t":"a\\/b \\u00e9\\ud83d\\ude00 \\ud83d\\u0041 \\udc00" , "\\u0074oken": "@TOKEN@", "checksum":"@CHECKSUM@" } \n',
    "pass", note="escaped keys name the token and text fields, as Python decodes them")
add_template(
    "valid_numbers_as_written",
    '{"client_id": "c", "text": "t", "token": "@TOKEN@", "n": [1E5, -0, 0e0, 1.0, 10.50, 1e400, -1e400, 1e-400, 0.1000000000000000055511151231257827, 2.5e-324, 123456789012345678901234567890, -0.0, 1e-5, 1.0E+2], "checksum": "@CHECKSUM@"}',
    "pass", note="integers keep their digits, -0 is 0, floats are Python repr, 1e400 is Infinity")
add_template(
    "valid_duplicate_keys",
    '{"text": "first", "client_id": "c", "text": "last", "checksum": "ffffffffffffffffffffffffffffffff", "token": "@TOKEN@", "n": {"a": 1, "a": 2}, "checksum": "@CHECKSUM@"}',
    "pass", note="json.loads keeps the last value of a repeated key, including the checksum itself")
add_template("valid_empty_containers", '{"client_id":"c","text":"","token":"@TOKEN@","a":{},"b":[],"c":[{}],"checksum":"@CHECKSUM@"}', "pass")
add_template("valid_deep_nesting", '{"client_id":"c","text":"t","token":"@TOKEN@","deep":' + "[" * 200 + '{"k":"v"}' + "]" * 200 + ',"checksum":"@CHECKSUM@"}', "pass")
add_message("valid_exp_within_leeway", seed_message(tok=token({"iat": NOW - 40, "exp": NOW - 3})), "pass",
            note="expired 3s ago, inside a 5s leeway", rules={"leeway_seconds": 5})
add_message("valid_nbf_within_leeway", seed_message(tok=token({"nbf": NOW + 3})), "pass", rules={"leeway_seconds": 5})
add_message("valid_float_exp", seed_message(tok=token({"exp": NOW + 28.5})), "pass")
add_message("valid_without_iat", seed_message(tok=token(drop=("iat",))), "pass")
add_message("valid_without_exp", seed_message(tok=token(drop=("exp",))), "pass", note="PyJWT checks exp only when present")
add_message("valid_without_iss", seed_message(tok=token(drop=("iss",))), "pass", note="the seed passes no issuer")
add_message("valid_other_issuer", seed_message(tok=token({"iss": "someone_else"})), "pass", note="the seed passes no issuer")
add_message("valid_iat_now", seed_message(tok=token({"iat": NOW})), "pass")
add_message("valid_exp_one_second_left", seed_message(tok=token({"exp": NOW + 1})), "pass")
add_message("valid_exp_string", seed_message(tok=token({"exp": str(NOW + 30)})), "pass", note="int('...') reads it")
add_message("valid_exp_string_underscores", seed_message(tok=token({"exp": " +1_800_000_030\n"})), "pass")
add_message("valid_iat_true", seed_message(tok=token({"iat": True})), "pass", note="int(True) is 1")
add_message("valid_exp_huge_integer", seed_message(tok=token({"exp": 10 ** 40})), "pass")
add_message("valid_aud_empty", seed_message(tok=token({"aud": ""})), "pass", note="a falsy aud names no audience")
add_message("valid_aud_empty_list", seed_message(tok=token({"aud": []})), "pass")
add_message("valid_sub_jti_strings", seed_message(tok=token({"sub": "s", "jti": "j"})), "pass")
add_message("valid_kid_string", seed_message(tok=token(headers={"kid": "k1"})), "pass")
add_message("valid_with_issuer", seed_message(), "pass", rules={"issuer": ISSUER})
add_message("valid_with_required", seed_message(), "pass", rules={"require": ["exp", "iss", "iat"], "issuer": ISSUER})
add_message("valid_audience_string", seed_message(tok=token({"aud": "store"})), "pass", rules={"audience": "store"})
add_message("valid_audience_list", seed_message(tok=token({"aud": ["other", "store"]})), "pass", rules={"audience": "store"})


def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hand_signed(header_json, claims):
    return hand_signed_raw(header_json, json.dumps(claims))


def hand_signed_raw(header_json, payload_text):
    signing_input = b64url(header_json.encode()) + "." + b64url(payload_text.encode())
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


add_message(
    "valid_escaped_alg_header",
    seed_message(tok=hand_signed('{"alg": "HS\\u0032\\u0035\\u0036", "typ": "JWT"}', {"iss": ISSUER, "exp": NOW + 28})),
    "pass", note="the header's alg is written with escapes; Python decodes it to HS256")

# --- Messages refused -----------------------------------------------------------------------------------------------

add("not_json_text", "not json", "not_json")
add("not_json_empty", "", "not_json")
add("not_json_array", json.dumps([seed_message()]), "not_json")
add("not_json_string", '"token"', "not_json")
add("not_json_unterminated", '{"token": "abc"', "not_json")
add("not_json_trailing_data", json.dumps(seed_message()) + " x", "not_json")
add("not_json_bad_utf8", b'{"client_id": "\xff", "token": "x"}', "not_json")
add("not_json_overlong_utf8", b'{"client_id": "\xc0\xaf"}', "not_json")
add("not_json_raw_control_char", '{"text": "a\tb"}', "not_json", note="Python's json.loads refuses raw control characters")
add("not_json_nan", '{"text": NaN}', "not_json", note="Python accepts NaN; routerd refuses it as no JSON producer writes it")
add("not_json_int_too_long", '{"n": ' + "1" * 4301 + "}", "not_json", note="Python 3.11+ refuses integers over 4300 digits")
add("not_json_bom", "\ufeff" + json.dumps(seed_message()), "not_json")
add("not_json_too_deep", "[" * 600 + "]" * 600, "not_json")

add_message("missing_token", {"client_id": "c", "text": "t", "checksum": checksum({"client_id": "c", "text": "t"})}, "missing_token")
add_message("malformed_token_number", seed_message(tok=12345), "malformed_token")
add_message("malformed_token_two_parts", seed_message(tok="abc.def"), "malformed_token")
add_message("malformed_token_not_base64", seed_message(tok="abc!.def.ghi"), "malformed_token")
add_message("malformed_token_header_not_json", seed_message(tok=base64.urlsafe_b64encode(b"hello").decode().rstrip("=") + ".e30.c2ln"), "malformed_token")
add_message("malformed_token_no_exp_required", seed_message(tok=token(drop=("exp",))), "malformed_token", rules={"require": ["exp"]})
add_message("malformed_token_exp_null_required", seed_message(tok=token({"exp": None})), "malformed_token", rules={"require": ["exp"]})
add_message("malformed_token_exp_null", seed_message(tok=token({"exp": None})), "malformed_token")
add_message("malformed_token_exp_text", seed_message(tok=token({"exp": "soon"})), "malformed_token")
add_message("malformed_token_exp_decimal_text", seed_message(tok=token({"exp": "1800000030.5"})), "malformed_token")
add_message("malformed_token_exp_list", seed_message(tok=token({"exp": [NOW + 30]})), "malformed_token")
add_message("malformed_token_iat_object", seed_message(tok=token({"iat": {"t": NOW}})), "malformed_token")
add_message("malformed_token_nbf_text", seed_message(tok=token({"nbf": "x"})), "malformed_token")
add_template("malformed_token_exp_infinite", '{"client_id": "c", "text": "t", "token": "@TOKEN@", "checksum": "@CHECKSUM@"}',
             "malformed_token", tok=hand_signed_raw('{"alg": "HS256"}', '{"exp": 1e400}'),
             note="exp 1e400 is inf to Python, and int(inf) raises")
add_message("malformed_token_sub_number", seed_message(tok=hand_signed('{"alg": "HS256"}', {"sub": 5, "exp": NOW + 28})), "malformed_token")
add_message("malformed_token_jti_number", seed_message(tok=token({"jti": 5})), "malformed_token")
add_message("malformed_token_kid_number", seed_message(tok=hand_signed('{"alg": "HS256", "kid": 5}', {"exp": NOW + 28})), "malformed_token")
add_message("malformed_token_empty_string", seed_message(tok="a.b.c"), "malformed_token")
add_message("bad_signature_other_secret", seed_message(tok=token(secret="another-secret-another-secret-0123456789")), "bad_signature")
add_message("bad_signature_alg_none", seed_message(tok=jwt.encode({"iss": ISSUER, "exp": NOW + 28}, None, algorithm="none")), "bad_signature")
add_message("bad_signature_alg_hs512", seed_message(tok=token(algorithm="HS512")), "bad_signature")
good = token().split(".")
forged_payload = base64.urlsafe_b64encode(json.dumps({"client_id": "admin", "iss": ISSUER, "iat": NOW - 2, "exp": NOW + 28}).encode()).decode().rstrip("=")
add_message("bad_signature_payload_swapped", seed_message(tok=good[0] + "." + forged_payload + "." + good[2]), "bad_signature")
add_message("expired", seed_message(tok=token({"iat": NOW - 40, "exp": NOW - 10})), "expired")
add_message("expired_three_seconds_ago", seed_message(tok=token({"iat": NOW - 40, "exp": NOW - 3})), "expired",
            note="PyJWT's leeway is 0 unless given")
add_message("expired_now", seed_message(tok=token({"exp": NOW})), "expired", note="exp <= now is expired")
add_message("expired_half_second_left", seed_message(tok=token({"exp": NOW + 0.5})), "expired", note="int(exp) truncates")
add_message("expired_true", seed_message(tok=token({"exp": True})), "expired", note="int(True) is 1")
add_message("expired_beyond_leeway", seed_message(tok=token({"exp": NOW - 6})), "expired", rules={"leeway_seconds": 5})
add_message("not_yet_valid_iat_one_second", seed_message(tok=token({"iat": NOW + 1})), "not_yet_valid")
add_message("not_yet_valid_nbf_soon", seed_message(tok=token({"nbf": NOW + 3})), "not_yet_valid")
add_message("not_yet_valid_nbf", seed_message(tok=token({"nbf": NOW + 60})), "not_yet_valid")
add_message("not_yet_valid_iat", seed_message(tok=token({"iat": NOW + 60, "exp": NOW + 90})), "not_yet_valid")
add_message("wrong_issuer", seed_message(tok=token({"iss": "someone_else"})), "wrong_issuer", rules={"issuer": ISSUER})
add_message("wrong_issuer_missing", seed_message(tok=token(drop=("iss",))), "wrong_issuer", rules={"issuer": ISSUER})
add_message("wrong_issuer_number", seed_message(tok=hand_signed('{"alg": "HS256", "typ": "JWT"}', {"iss": 5, "exp": NOW + 28})),
            "wrong_issuer", rules={"issuer": ISSUER})
add_message("wrong_issuer_missing_required", seed_message(tok=token(drop=("iss",))), "wrong_issuer",
            rules={"issuer": ISSUER, "require": ["iss"]})
add_message("malformed_token_iss_required", seed_message(tok=token(drop=("iss",))), "malformed_token", rules={"require": ["iss"]})
add_message("wrong_audience_unexpected", seed_message(tok=token({"aud": "store"})), "wrong_audience", note="PyJWT refuses an aud it was not told to expect")
add_message("wrong_audience_list_unexpected", seed_message(tok=token({"aud": ["store"]})), "wrong_audience")
add_message("wrong_audience_other", seed_message(tok=token({"aud": "other"})), "wrong_audience", rules={"audience": "store"})
add_message("wrong_audience_missing", seed_message(), "wrong_audience", rules={"audience": "store"})
add_message("wrong_audience_not_strings", seed_message(tok=hand_signed('{"alg": "HS256"}', {"aud": ["store", 1], "exp": NOW + 28})),
            "wrong_audience", rules={"audience": "store"})
add_message("bad_signature_no_alg", seed_message(tok=hand_signed('{"typ": "JWT"}', {"exp": NOW + 28})), "bad_signature")
add_message("bad_signature_alg_number", seed_message(tok=hand_signed('{"alg": 256}', {"exp": NOW + 28})), "bad_signature")
add_message("malformed_token_crit_unknown", seed_message(tok=hand_signed('{"alg": "HS256", "crit": ["exp"], "exp": 1}', {"exp": NOW + 28})), "malformed_token")
add_message("malformed_token_crit_empty", seed_message(tok=hand_signed('{"alg": "HS256", "crit": []}', {"exp": NOW + 28})), "malformed_token")
add_message("malformed_token_b64_false", seed_message(tok=hand_signed('{"alg": "HS256", "b64": false, "crit": ["b64"]}', {"exp": NOW + 28})), "malformed_token")
add_message("valid_crit_b64_true", seed_message(tok=hand_signed('{"alg": "HS256", "b64": true, "crit": ["b64"]}', {"exp": NOW + 28})), "pass")
add_message("malformed_token_payload_not_object", seed_message(tok=hand_signed('{"alg": "HS256"}', [1, 2])), "malformed_token")
add_message("missing_token_empty", seed_message(tok=""), "missing_token", note="the seed's `if not token` refuses a falsy token")
add_message("missing_token_null", seed_message(tok=None), "missing_token")
no_checksum = seed_message()
no_checksum.pop("checksum")
add_message("missing_checksum", no_checksum, "missing_checksum")
wrong = seed_message()
wrong["checksum"] = "0" * 32
add_message("bad_checksum_wrong_digest", wrong, "bad_checksum")
upper = seed_message()
upper["checksum"] = upper["checksum"].upper()
add_message("bad_checksum_uppercase", upper, "bad_checksum", note="the seed compares the hex strings exactly")
unsorted = seed_message()
unsorted.pop("checksum")
unsorted["checksum"] = hashlib.md5(json.dumps({"text": unsorted["text"], "client_id": unsorted["client_id"], "token": unsorted["token"]}).encode()).hexdigest()
add_message("bad_checksum_unsorted_keys", unsorted, "bad_checksum")
compact = seed_message()
compact.pop("checksum")
compact["checksum"] = hashlib.md5(json.dumps(compact, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
add_message("bad_checksum_compact_separators", compact, "bad_checksum")
numeric = seed_message()
numeric["checksum"] = 12345
add_message("bad_checksum_not_a_string", numeric, "bad_checksum")
altered = seed_message("the original text")
altered["text"] = "an altered text"
add_message("bad_checksum_altered_text", altered, "bad_checksum")


class FrozenDatetime(datetime.datetime):
    """PyJWT reads the time with datetime.now(tz=timezone.utc); here it is always NOW."""

    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.fromtimestamp(NOW, tz=tz)


jwt.api_jwt.datetime = FrozenDatetime


def python_verdict(entry, rules):
    """The seed receiver's datagram_received (Service1/server.py) with the real PyJWT, as a reason name."""
    try:
        message = json.loads(entry.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return "not_json"
    if not isinstance(message, dict):
        return "not_json"
    tok = message.get("token")
    if not tok:
        return "missing_token"
    issuer = rules.get("issuer")
    try:
        jwt.decode(tok, SECRET, algorithms=["HS256"], issuer=issuer, audience=rules.get("audience"),
                   leeway=rules.get("leeway_seconds", 0), options={"require": rules.get("require", [])})
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
        return "bad_signature"
    except jwt.ExpiredSignatureError:
        return "expired"
    except jwt.ImmatureSignatureError:
        return "not_yet_valid"
    except jwt.InvalidIssuerError:
        return "wrong_issuer"
    except jwt.InvalidAudienceError:
        return "wrong_audience"
    except jwt.MissingRequiredClaimError as error:
        if error.claim == "iss" and issuer is not None:
            return "wrong_issuer"
        if error.claim == "aud":
            return "wrong_audience"
        return "malformed_token"
    except jwt.PyJWTError:
        return "malformed_token"
    if "checksum" not in message:
        return "missing_checksum"
    given = message.pop("checksum")
    return "pass" if given == checksum(message) else "bad_checksum"


# Every label must be Python's own verdict, but for the policies routerd keeps on purpose (NaN, which no JSON
# producer writes; Python's 4300-digit limit is shared).
for case in cases:
    if case["name"] in ("not_json_nan",):
        continue
    verdict = python_verdict(base64.b64decode(case["entry_base64"]), case.get("rules", {}))
    if verdict != case["expect"]:
        sys.exit(f"{case['name']}: labelled {case['expect']} but Python says {verdict}")



def seed_client_message(client_id, counter, now):
    """Source1/client.py's generate_jwt, add_checksum_and_token and json.dumps, at the time `now`."""
    token_ = jwt.encode({"iss": "udp_client", "iat": int(now), "exp": int(now) + 30}, SECRET, algorithm="HS256")
    message = {"client_id": client_id, "text": f"This is being sent via the UDP protocol. #{counter}"}
    copy = message.copy()
    copy["token"] = token_
    raw = json.dumps({k: v for k, v in copy.items() if k != "checksum"}, sort_keys=True).encode("utf-8")
    copy["checksum"] = hashlib.md5(raw).hexdigest()
    return json.dumps(copy)


seed_client = [
    {"client_id": client_id, "counter": counter, "now": NOW - counter % 20, "message": seed_client_message(client_id, counter, NOW - counter % 20)}
    for client_id, counter in [(1, 1), (1, 2), (7, 123456), (-3, 10), (2**40, 99)]
]
for item in seed_client:
    if python_verdict(item["message"].encode(), {}) != "pass":
        sys.exit("the seed client's message does not pass the seed receiver's checks")

os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "cases.json"), "w") as file:
    json.dump({"secret": SECRET, "pyjwt": jwt.__version__, "now": NOW, "cases": cases, "seed_client": seed_client},
              file, indent=1)
    file.write("\n")
print(f"wrote {len(cases)} cases to {os.path.normpath(os.path.join(OUT, 'cases.json'))}")
