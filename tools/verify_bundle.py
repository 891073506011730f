#!/usr/bin/env python3
"""Independent verifier of Stele evidence bundles (format stele-bundle/1, docs/bundles.md).

    python3 tools/verify_bundle.py BUNDLE VKEY        verify a bundle
    python3 tools/verify_bundle.py --note NOTE VKEY   verify one signed note

VKEY is the log's C2SP verifier key (name+hexid+base64), or @FILE holding it. Exit 0 when
every check passes, 1 naming the first problem, 2 for usage errors.

Written from docs/bundles.md, docs/formats.md, the C2SP signed-note and tlog-checkpoint specs
and RFC 9162 alone, sharing no code with Stele. Uses only the standard library and the
`cryptography` package (Ed25519). It checks the bundle's structure, signatures, hashes,
proofs, window and filters; of the event schema it checks only the fields it filters on.
"""

import base64
import hashlib
import json
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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
