//! Test events, acknowledgements, leaf hashes and a seeded random source.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// RFC 6962 leaf hash: `SHA-256(0x00 ‖ entry)`.
pub fn leaf_hash(entry: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    h.finalize().into()
}

/// Standard base64 of `bytes` (how the API writes hashes).
pub fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Decodes standard base64.
///
/// # Panics
///
/// On invalid base64.
pub fn unb64(s: &str) -> Vec<u8> {
    BASE64
        .decode(s)
        .unwrap_or_else(|e| panic!("bad base64 {s:?}: {e}"))
}

/// A valid event; `n` varies its content so that events differ.
pub fn event(n: u64) -> Value {
    let outcomes = ["allow", "deny", "error"];
    let outcome = outcomes[usize::try_from(n % 3).expect("small")];
    json!({
        "actor": {"type": "user", "id": format!("user-{}", n % 97)},
        "action": "auth.login",
        "resource": {"type": "app", "id": "console"},
        "outcome": outcome,
        "reason": format!("test event {n}"),
        "context": {"n": n},
    })
}

/// [`event`] with a client-chosen id.
pub fn event_with_id(n: u64, id: &str) -> Value {
    let mut e = event(n);
    e["id"] = Value::String(id.to_owned());
    e
}

/// A fresh random (v4) UUID, lowercase hyphenated.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One entry of a `POST /v1/events` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Log index.
    pub index: u64,
    /// Event id.
    pub id: String,
    /// Leaf hash (decoded).
    pub leaf_hash: [u8; 32],
    /// Whether the log reported it as an idempotent retry.
    pub duplicate: bool,
}

/// Parses the `entries` of a successful `POST /v1/events` answer.
///
/// # Panics
///
/// If the answer does not have the documented shape.
pub fn acks(answer: &Value) -> Vec<Ack> {
    let entries = answer["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("answer without entries: {answer}"));
    entries
        .iter()
        .map(|e| {
            let hash = unb64(
                e["leaf_hash"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no leaf_hash: {e}")),
            );
            Ack {
                index: e["index"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no index: {e}")),
                id: e["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no id: {e}"))
                    .to_owned(),
                leaf_hash: hash
                    .try_into()
                    .unwrap_or_else(|h: Vec<u8>| panic!("leaf_hash of {} bytes", h.len())),
                duplicate: e["duplicate"].as_bool().unwrap_or(false),
            }
        })
        .collect()
}

/// The stored event without the fields the server assigns (`id`, `time`,
/// `client_time_skewed`), to compare with what was sent (minus its `id`).
pub fn client_fields(event: &Value) -> Value {
    let mut e = event.clone();
    if let Some(o) = e.as_object_mut() {
        o.remove("id");
        o.remove("time");
        o.remove("client_time_skewed");
    }
    e
}

/// A small seeded PRNG (SplitMix64). The seed is printed so a failing run can be repeated
/// with `STELE_TEST_SEED`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from `STELE_TEST_SEED` if set, else from the OS; prints the seed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("STELE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| getrandom::u64().expect("OS randomness"));
        eprintln!("{test}: STELE_TEST_SEED={seed}");
        Rng(seed)
    }

    /// A generator with a fixed seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `num/den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next_u64() % den < num
    }
}
