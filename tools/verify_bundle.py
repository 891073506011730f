#!/usr/bin/env python3
"""Independent verifier of Stele evidence bundles (format stele-bundle/1, docs/bundles.md).

    python3 tools/verify_bundle.py BUNDLE VKEY        verify a bundle
    python3 tools/verify_bundle.py --note NOTE VKEY   verify one signed note

VKEY is the log's C2SP verifier key (name+hexid+base64), or @FILE holding it. Exit 0 when
every check passes, 1 naming the first problem, 2 for usage errors.

Written from docs/bundles.md, docs/formats.md, the C2SP signed-note and tlog-checkpoint specs
and RFC 9162 alone, sharing no code with Stele. Uses only the standard library and the
`cryptography` package (Ed25519) — or, where that is not installed, the RFC 8032 verification
written out below. It checks the bundle's structure, signatures, hashes,
proofs, window and filters; of the event schema it checks only the fields it filters on.
"""

import base64
import hashlib
import json
import os
import re
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # no `cryptography`: the RFC 8032 fallback below, so the tool runs anywhere
    Ed25519PublicKey = None

    class InvalidSignature(Exception):
        """Raised by the fallback verifier, as by `cryptography`."""

# --- Ed25519 verification (RFC 8032 §5.1.7), used only when `cryptography` is missing -------
# Slow (pure Python big integers, a few ms per signature) but exact; `STELE_PURE_ED25519=1`
# forces it so the tests exercise it beside the library.
_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _point_add(a, b):
    """Sum of two points in extended coordinates (X, Y, Z, T)."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    k = (y1 - x1) * (y2 - x2) % _P
    l = (y1 + x1) * (y2 + x2) % _P
    m = 2 * t1 * t2 * _D % _P
    n = 2 * z1 * z2 % _P
    e, f, g, h = l - k, n - m, n + m, l + k
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _point_mul(s, point):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _point_add(q, point)
        point = _point_add(point, point)
        s >>= 1
    return q


def _point_equal(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _decompress(raw):
    """The point encoded by 32 bytes, or None when they encode none."""
    y = int.from_bytes(raw, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        if sign:
            return None
        return (0, y, 1, 0)
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


_G = _decompress((4 * pow(5, _P - 2, _P) % _P).to_bytes(32, "little"))


class PureEd25519PublicKey:
    """The subset of `cryptography`'s Ed25519PublicKey this tool uses."""

    def __init__(self, raw):
        self.raw = raw
        self.point = _decompress(raw)
        if self.point is None:
            raise ValueError("not a point on the curve")

    @classmethod
    def from_public_bytes(cls, raw):
        return cls(bytes(raw))

    def verify(self, signature, message):
        if len(signature) != 64:
            raise InvalidSignature()
        r_point = _decompress(signature[:32])
        s = int.from_bytes(signature[32:], "little")
        if r_point is None or s >= _L:
            raise InvalidSignature()
        k = int.from_bytes(hashlib.sha512(signature[:32] + self.raw + message).digest(), "little")
        if not _point_equal(_point_mul(s, _G), _point_add(r_point, _point_mul(k % _L, self.point))):
            raise InvalidSignature()


if Ed25519PublicKey is None or os.environ.get("STELE_PURE_ED25519") == "1":
    Ed25519PublicKey = PureEd25519PublicKey

FORMAT = "stele-bundle/1"
TIME_RE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}Z\Z")
DECIMAL_RE = re.compile(r"\A(0|[1-9][0-9]*)\Z")
FILTERS = ("actor", "action", "resource_type", "resource_id", "outcome", "tenant", "source")


class Bad(Exception):
    """The first problem found."""


def b64(s, what, length=None):
    """Strict standard base64 (padded, canonical), optionally of an exact length."""
    if not isinstance(s, str):
        raise Bad(f"{what}: not a string")
    try:
        raw = base64.b64decode(s, validate=True)
    except ValueError:
        raise Bad(f"{what}: not base64") from None
    if base64.b64encode(raw).decode() != s:
        raise Bad(f"{what}: not canonical base64")
    if length is not None and len(raw) != length:
        raise Bad(f"{what}: {len(raw)} bytes, expected {length}")
    return raw


def valid_key_name(name):
    return name != "" and not any(c.isspace() or c == "+" or c < " " for c in name)


def parse_vkey(s):
    """C2SP signed-note verifier key: <name>+<8 hex key ID>+<base64(0x01 || 32-byte key)>."""
    parts = s.split("+", 2)
    if len(parts) != 3:
        raise Bad("verifier key: expected <name>+<hex id>+<base64 key>")
    name, key_id, key = parts
    if not valid_key_name(name) or not re.fullmatch(r"[0-9a-f]{8}", key_id):
        raise Bad("verifier key: bad name or key ID")
    raw = b64(key, "verifier key", 33)
    if raw[0] != 0x01:
        raise Bad("verifier key: not an Ed25519 key")
    want = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if want.hex() != key_id:
        raise Bad("verifier key: key ID does not match the name and key")
    try:
        public = Ed25519PublicKey.from_public_bytes(raw[1:])
    except ValueError:
        raise Bad("verifier key: not a valid Ed25519 public key") from None
    return name, bytes.fromhex(key_id), public, s


def open_note(note, vkey, what):
    """Verifies a signed note by vkey; returns its text (signed-note, docs/formats.md)."""
    name, key_id, public, _ = vkey
    if any(c < " " and c != "\n" for c in note):
        raise Bad(f"{what}: control character in the note")
    text, sep, sigs = note.rpartition("\n\n")
    if not sep or not sigs.endswith("\n"):
        raise Bad(f"{what}: malformed note")
    text += "\n"
    found = False
    for line in sigs[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            raise Bad(f"{what}: malformed signature line")
        sig_name, _, sig_b64 = line[2:].partition(" ")
        raw = b64(sig_b64, f"{what}: signature")
        if len(raw) < 5:
            raise Bad(f"{what}: signature shorter than 5 bytes")
        if sig_name != name or raw[:4] != key_id:
            continue  # another signer, e.g. a witness cosignature
        try:
            public.verify(raw[4:], text.encode())
        except InvalidSignature:
            raise Bad(f"{what}: invalid signature by {name}") from None
        found = True
    if not found:
        raise Bad(f"{what}: no signature by {name}")
    return text


def open_checkpoint(note, vkey, what):
    """A signed tlog-checkpoint: returns (size, root)."""
    if not isinstance(note, str):
        raise Bad(f"{what}: not a string")
    lines = open_note(note, vkey, what)[:-1].split("\n")
    if len(lines) < 3 or any(line == "" for line in lines):
        raise Bad(f"{what}: malformed checkpoint text")
    if lines[0] != vkey[0]:
        raise Bad(f"{what}: origin {lines[0]!r} is not the key name {vkey[0]!r}")
    if not DECIMAL_RE.match(lines[1]):
        raise Bad(f"{what}: bad tree size")
    return int(lines[1]), b64(lines[2], f"{what}: root", 32)


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf, index, size, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return "index out of range"
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return "proof too long"
        if fn % 2 == 1 or fn == sn:
            r = node(p, r)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        return "proof too short"
    return None if r == root else "proof does not lead to the checkpoint root"


def verify_consistency(m, n, proof, old_root, new_root):
    """RFC 9162 section 2.1.4.2, for 1 <= m <= n."""
    if m == n:
        return None if not proof and old_root == new_root else "sizes equal but roots or proof differ"
    if m & (m - 1) == 0:
        proof = [old_root] + proof
    if not proof:
        return "empty proof"
    fn, sn = m - 1, n - 1
    while fn % 2 == 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return "proof too long"
        if fn % 2 == 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        return "proof too short"
    if fr != old_root:
        return "proof does not lead to the earlier root"
    return None if sr == new_root else "proof does not lead to the checkpoint root"


def keys_exactly(obj, keys, what):
    if not isinstance(obj, dict) or set(obj) != set(keys):
        raise Bad(f"{what}: expected an object with exactly {sorted(keys)}")


def entry_index(e, where):
    keys_exactly(e, ("index", "leaf_hash", "entry", "inclusion"), where)
    index = e["index"]
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise Bad(f"{where}: bad index")
    return index


def check_entry(e, where, size, root):
    """Leaf hash, inclusion proof, event shape; returns the index and the decoded event."""
    index, entry = entry_index(e, where), e["entry"]
    where = f"{where} (log index {index})"
    if not isinstance(entry, str) or not isinstance(e["inclusion"], list):
        raise Bad(f"{where}: bad entry or inclusion")
    try:
        data = entry.encode("utf-8")
    except UnicodeEncodeError:
        raise Bad(f"{where}: the entry is not UTF-8 text") from None
    leaf = hashlib.sha256(b"\x00" + data).digest()
    if leaf != b64(e["leaf_hash"], f"{where}: leaf_hash", 32):
        raise Bad(f"{where}: the entry does not hash to its leaf_hash (altered)")
    proof = [b64(h, f"{where}: inclusion", 32) for h in e["inclusion"]]
    problem = verify_inclusion(leaf, index, size, proof, root)
    if problem:
        raise Bad(f"{where}: inclusion proof: {problem}")
    try:
        ev = json.loads(entry)
    except ValueError:
        raise Bad(f"{where}: the entry is not JSON") from None
    ok = (
        isinstance(ev, dict)
        and isinstance(ev.get("id"), str)
        and isinstance(ev.get("time"), str)
        and TIME_RE.match(ev["time"])
        and isinstance(ev.get("actor"), dict)
        and isinstance(ev["actor"].get("id"), str)
        and isinstance(ev.get("action"), str)
        and isinstance(ev.get("resource"), dict)
        and isinstance(ev["resource"].get("type"), str)
        and isinstance(ev["resource"].get("id"), str)
        and ev.get("outcome") in ("allow", "deny", "error")
    )
    if not ok:
        raise Bad(f"{where}: the entry is not a stored event")
    return index, ev


def mismatch(filters, ev):
    """The first filter the event does not match, or None."""
    values = {
        "actor": ev["actor"]["id"],
        "action": ev["action"],
        "resource_type": ev["resource"]["type"],
        "resource_id": ev["resource"]["id"],
        "outcome": ev["outcome"],
        "tenant": ev.get("tenant"),
        "source": ev.get("source"),
    }
    for name in FILTERS:
        want = filters.get(name)
        if want is None:
            continue
        if name == "action" and want.endswith(".*"):
            if not ev["action"].startswith(want[:-1]):
                return name
        elif values[name] != want:
            return name
    return None


def verify(bundle, vkey):
    keys_exactly(bundle, ("format", "produced", "log", "selection", "checkpoint", "previous",
                          "before", "after", "events"), "bundle")
    if bundle["format"] != FORMAT:
        raise Bad(f"format is {bundle['format']!r}, expected {FORMAT!r}")
    size, root = open_checkpoint(bundle["checkpoint"], vkey, "checkpoint")
    produced = bundle["produced"]
    keys_exactly(produced, ("at", "by", "source"), "produced")
    if not all(isinstance(v, str) for v in produced.values()):
        raise Bad("produced: values must be strings")
    log = bundle["log"]
    keys_exactly(log, ("origin", "verifier_keys"), "log")
    if log["origin"] != vkey[0]:
        raise Bad("log.origin is not the checkpoint's origin")
    if not isinstance(log["verifier_keys"], list) or vkey[3] not in log["verifier_keys"]:
        raise Bad("log.verifier_keys does not list the key you trust")
    sel = bundle["selection"]
    keys_exactly(sel, ("from", "to", "filters", "first_index", "end_index"), "selection")
    frm, to, filters = sel["from"], sel["to"], sel["filters"]
    for name, t in (("from", frm), ("to", to)):
        if not isinstance(t, str) or not TIME_RE.match(t):
            raise Bad(f"selection.{name} is not a 30-byte log timestamp")
    if not frm < to:  # fixed-width UTC: byte order is time order
        raise Bad("selection: from is not before to")
    if not isinstance(filters, dict) or not set(filters) <= set(FILTERS):
        raise Bad("selection.filters: unknown filter")
    for name, value in filters.items():
        if not isinstance(value, str) or value == "":
            raise Bad(f"selection.filters: {name} must be a non-empty string")
    if filters.get("outcome", "allow") not in ("allow", "deny", "error"):
        raise Bad("selection.filters: bad outcome")
    action = filters.get("action", "a")
    if "*" in (action[:-2] if action.endswith(".*") else action) or action == ".*":
        raise Bad("selection.filters: bad action wildcard")
    first, end = sel["first_index"], sel["end_index"]
    if not (isinstance(first, int) and isinstance(end, int) and 0 <= first <= end <= size):
        raise Bad("selection: need first_index <= end_index <= tree size")

    prev = bundle["previous"]
    if prev is not None:
        keys_exactly(prev, ("checkpoint", "consistency"), "previous")
        old_size, old_root = open_checkpoint(prev["checkpoint"], vkey, "previous.checkpoint")
        if old_size > size:
            raise Bad("previous.checkpoint is larger than the checkpoint: rollback")
        if old_size == 0:
            raise Bad("previous.checkpoint is of the empty tree")
        if not isinstance(prev["consistency"], list):
            raise Bad("previous.consistency: not a list")
        proof = [b64(h, "previous.consistency", 32) for h in prev["consistency"]]
        problem = verify_consistency(old_size, size, proof, old_root, root)
        if problem:
            raise Bad(f"previous.consistency: {problem}")

    for which, want_index, outside in (
        ("before", first - 1 if first > 0 else None, lambda t: t >= frm),
        ("after", end if end < size else None, lambda t: t < to),
    ):
        e = bundle[which]
        if (e is None) != (want_index is None):
            raise Bad(f"{which}: must be {'null' if want_index is None else 'present'}")
        if e is None:
            continue
        index, ev = check_entry(e, which, size, root)
        if index != want_index:
            raise Bad(f"{which}: index must be {want_index}")
        if outside(ev["time"]):
            raise Bad(f"{which} (log index {index}): time is on the wrong side of the window")

    events = bundle["events"]
    if not isinstance(events, list):
        raise Bad("events: not a list")
    complete = not filters
    previous = None
    for position, e in enumerate(events):
        where = f"events[{position}]"
        index = entry_index(e, where)
        if previous is not None and index <= previous:
            raise Bad(f"{where} (log index {index}): not after the previous event")
        if not first <= index < end:
            raise Bad(f"{where} (log index {index}): outside [first_index, end_index)")
        if complete and index != first + position:
            raise Bad(f"events: log index {first + position} is missing")
        _, ev = check_entry(e, where, size, root)
        if not frm <= ev["time"] < to:
            raise Bad(f"{where} (log index {index}): time is outside the window")
        name = mismatch(filters, ev)
        if name:
            raise Bad(f"{where} (log index {index}): does not match filter {name}")
        previous = index
    if complete and len(events) != end - first:
        raise Bad(f"events: log index {first + len(events)} is missing")
    return len(events), size, complete


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def main(argv):
    note_mode = len(argv) == 3 and argv[0] == "--note"
    if note_mode:
        argv = argv[1:]
    if len(argv) != 2:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    path, key = argv
    try:
        key = read_bytes(key[1:]).decode("utf-8").strip() if key.startswith("@") else key
        data = read_bytes(path)
    except (OSError, UnicodeDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        vkey = parse_vkey(key)
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise Bad("not UTF-8") from None
        if note_mode:
            open_note(data, vkey, path)
            print(f"ok: {path} is signed by {key}")
            return 0
        try:
            bundle = json.loads(data)
        except ValueError as e:
            raise Bad(f"not JSON: {e}") from None
        count, size, complete = verify(bundle, vkey)
    except Bad as e:
        print(f"error: {path}: {e}", file=sys.stderr)
        return 1
    scope = "complete window" if complete else "filtered"
    print(f"ok: {count} events ({scope}), proved against the checkpoint of size {size}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
