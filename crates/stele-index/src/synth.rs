//! Synthetic but realistic audit events, for benchmarks and property tests: many actors with
//! a skewed activity distribution, authorization checks dominating, logins, document access,
//! and permission changes (`role.*`, `user.*`, `group.*`) that follow the replay conventions.
//! Deterministic for a seed; no time (the log assigns it).

use serde_json::{json, Value};
use stele_core::event::{validate_owned, EventLimits};
use stele_core::timestamp::Timestamp;
use stele_store::{EntryKey, NewEntry};
use uuid::Uuid;

/// `event` validated and encoded as the server would append it (a fresh UUIDv7 id, the time
/// slot for the store to stamp, the idempotency key); `None` if it is not a valid event.
pub fn prepare(event: Value) -> Option<NewEntry> {
    let limits = EventLimits::default();
    let now = Timestamp::from_unix_nanos(stele_store::system_clock());
    let p = validate_owned(event, &limits)
        .ok()?
        .encode(Uuid::now_v7(), now, &limits)
        .ok()?;
    Some(NewEntry {
        key: Some(EntryKey {
            id: p.id.into_bytes(),
            digest: p.content_digest,
        }),
        time_offset: Some(p.time_offset),
        data: p.bytes,
    })
}

/// Shape of the generated population.
#[derive(Clone, Copy, Debug)]
pub struct SynthConfig {
    /// Distinct human actors (`user-N`).
    pub users: u64,
    /// Distinct tenants.
    pub tenants: u64,
    /// Distinct resources per type.
    pub resources: u64,
    /// Percent of events that are permission changes.
    pub change_percent: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            users: 20_000,
            tenants: 200,
            resources: 2_000_000,
            change_percent: 2,
        }
    }
}

/// A deterministic event generator.
pub struct Synth {
    state: u64,
    cfg: SynthConfig,
}

/// Roles granted by the permission-change events.
pub const ROLES: [&str; 6] = [
    "viewer",
    "editor",
    "admin",
    "billing-admin",
    "auditor",
    "owner",
];
const WORDS: [&str; 24] = [
    "ticket",
    "break",
    "glass",
    "approved",
    "manager",
    "quarterly",
    "review",
    "expired",
    "token",
    "mfa",
    "missing",
    "rate",
    "limit",
    "policy",
    "match",
    "denied",
    "scope",
    "owner",
    "session",
    "revoked",
    "suspicious",
    "location",
    "device",
    "unknown",
];
const ROUTES: [&str; 6] = [
    "/api/v1/documents",
    "/api/v1/projects",
    "/api/v1/billing",
    "/api/v1/users",
    "/admin/roles",
    "/api/v1/search",
];

impl Synth {
    /// A generator with `seed` and `cfg`.
    pub fn new(seed: u64, cfg: SynthConfig) -> Self {
        Synth {
            state: seed ^ 0x9E37_79B9_7F4A_7C15,
            cfg,
        }
    }

    /// splitmix64.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Skewed pick in `0..n`: low numbers are much more frequent (log-uniform).
    fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n.max(1) as f64).powf(u) as u64)
            .saturating_sub(1)
            .min(n.max(1) - 1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items
            .get(self.below(items.len() as u64) as usize)
            .copied()
            .unwrap_or("")
    }

    /// The next event, as a client would send it.
    pub fn event(&mut self) -> Value {
        let user = self.skewed(self.cfg.users);
        let tenant = format!("tenant-{}", self.skewed(self.cfg.tenants));
        let source = format!("gateway-{}", self.below(8));
        if self.below(100) < self.cfg.change_percent {
            return self.change(user, &tenant, &source);
        }
        let roll = self.below(100);
        let (action, rtype) = match roll {
            0..=59 => (
                "authz.check",
                *["document", "project", "bucket"]
                    .get(self.below(3) as usize)
                    .unwrap_or(&"document"),
            ),
            60..=69 => ("auth.login", "app"),
            70..=74 => ("auth.logout", "app"),
            75..=89 => ("document.read", "document"),
            90..=96 => ("document.write", "document"),
            _ => ("document.delete", "document"),
        };
        let outcome = match self.below(100) {
            0..=79 => "allow",
            80..=96 => "deny",
            _ => "error",
        };
        let (kind, id) = if self.below(10) == 0 {
            ("service", format!("svc-{}", self.below(50)))
        } else {
            ("user", format!("user-{user}"))
        };
        let mut ev = json!({
            "actor": {
                "type": kind, "id": id,
                "ip": format!("10.{}.{}.{}", user % 256, (user / 256) % 256, self.below(250) + 1),
                "session_id": format!("s-{:x}", user * 1_000 + self.below(20)),
            },
            "action": action,
            "resource": {"type": rtype, "id": format!("{rtype}-{}", self.skewed(self.cfg.resources))},
            "outcome": outcome,
            "tenant": tenant,
            "source": source,
            "context": {
                "request_id": format!("req-{:012x}", self.next() >> 16),
                "route": self.pick(&ROUTES),
            },
        });
        if outcome != "allow" || self.below(4) == 0 {
            let words: Vec<&str> = (0..3 + self.below(4)).map(|_| self.pick(&WORDS)).collect();
            ev["reason"] = Value::String(words.join(" "));
        }
        ev
    }

    /// A permission change made by an administrator.
    fn change(&mut self, user: u64, tenant: &str, source: &str) -> Value {
        let admin = format!("user-{}", self.below(20));
        let subject = format!("user-{user}");
        let (action, change, rtype, rid) = match self.below(100) {
            0..=54 => {
                let role = self.pick(&ROLES);
                let change = if self.below(5) == 0 {
                    json!({"principal": subject, "role": role})
                } else {
                    json!({"principal": subject, "role": role, "scope": {"type": "tenant", "id": tenant}})
                };
                ("role.grant", change, "role", role.to_owned())
            }
            55..=79 => {
                let role = self.pick(&ROLES);
                let change = json!({"principal": subject, "role": role, "scope": {"type": "tenant", "id": tenant}});
                ("role.revoke", change, "role", role.to_owned())
            }
            80..=87 => {
                let group = format!("group-{}", self.below(40));
                (
                    "group.add",
                    json!({"principal": subject, "group": group}),
                    "group",
                    group,
                )
            }
            88..=91 => {
                let group = format!("group-{}", self.below(40));
                (
                    "group.remove",
                    json!({"principal": subject, "group": group}),
                    "group",
                    group,
                )
            }
            92..=96 => (
                "user.deactivate",
                json!({"principal": subject}),
                "user",
                subject.clone(),
            ),
            _ => (
                "user.activate",
                json!({"principal": subject}),
                "user",
                subject.clone(),
            ),
        };
        json!({
            "actor": {"type": "user", "id": admin, "session_id": format!("adm-{}", self.below(1000))},
            "action": action,
            "resource": {"type": rtype, "id": rid},
            "outcome": "allow",
            "tenant": tenant,
            "source": source,
            "reason": format!("ticket {} {}", self.below(10_000), self.pick(&WORDS)),
            "change": change,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_events_are_valid_and_deterministic() {
        let limits = stele_core::event::EventLimits::default();
        let mut a = Synth::new(7, SynthConfig::default());
        let mut b = Synth::new(7, SynthConfig::default());
        let mut changes = 0;
        for _ in 0..2_000 {
            let ev = a.event();
            assert_eq!(ev, b.event());
            if ev.get("change").is_some() {
                changes += 1;
            }
            stele_core::event::validate(&ev, &limits).unwrap();
        }
        assert!((10..100).contains(&changes), "{changes}");
    }
}
