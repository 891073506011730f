//! A tiny application that makes its own authorization decisions (role-based, from a table)
//! and records every one in a Stele log with `stele-client`.
//!
//! ```sh
//! stele serve &                      # a log on 127.0.0.1:7407
//! cargo run -p stele-client --example authz_app
//! STELE_URL=http://127.0.0.1:7407 STELE_TOKEN=… STELE_SPOOL=/var/spool/myapp \
//!     cargo run -p stele-client --example authz_app
//! ```
//!
//! If the log is down, the decisions are spooled (fsynced) and sent when it is back: run the
//! example with the log stopped, then start the log and run it again.

use std::time::Duration;

use serde_json::json;
use stele_client::{Client, Delivery};

/// Who holds which role, and what each role may do.
const ROLES: &[(&str, &str)] = &[("alice", "admin"), ("bob", "viewer"), ("carol", "editor")];
const GRANTS: &[(&str, &[&str])] = &[
    ("admin", &["read", "write", "delete"]),
    ("editor", &["read", "write"]),
    ("viewer", &["read"]),
];

/// The application's policy: `Ok(role)` if `user` may `verb`, else `Err(why)`.
fn authorize(user: &str, verb: &str) -> Result<&'static str, String> {
    let Some((_, role)) = ROLES.iter().find(|(u, _)| *u == user) else {
        return Err(format!("{user} has no role"));
    };
    let allowed = GRANTS
        .iter()
        .find(|(r, _)| r == role)
        .is_some_and(|(_, verbs)| verbs.contains(&verb));
    if allowed {
        Ok(role)
    } else {
        Err(format!("role {role} does not grant {verb}"))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("STELE_URL").unwrap_or_else(|_| "http://127.0.0.1:7407".to_owned());
    let spool = std::env::var("STELE_SPOOL").unwrap_or_else(|_| {
        std::env::temp_dir()
            .join("stele-authz-app-spool")
            .to_string_lossy()
            .into_owned()
    });
    let mut builder = Client::builder(&url).spool_dir(&spool);
    if let Ok(token) = std::env::var("STELE_TOKEN") {
        builder = builder.token(token);
    }
    let client = builder.build()?;

    let requests = [
        ("alice", "delete", "invoice-17"),
        ("bob", "read", "invoice-17"),
        ("bob", "write", "invoice-17"),
        ("mallory", "read", "payroll"),
        ("carol", "write", "invoice-18"),
    ];
    for (user, verb, document) in requests {
        let decision = authorize(user, verb);
        let (outcome, reason) = match &decision {
            Ok(role) => ("allow", format!("role {role} grants {verb}")),
            Err(why) => ("deny", why.clone()),
        };
        // The app acts on the decision right away; recording happens in the background.
        let id = client.record(json!({
            "actor": {"type": "user", "id": user},
            "action": format!("document.{verb}"),
            "resource": {"type": "document", "id": document},
            "outcome": outcome,
            "reason": reason,
            "policy": {"id": "authz-app-rbac", "version": "1"},
            "source": "authz-app",
        }))?;
        println!("{user} {verb} {document}: {outcome} ({reason}) -> event {id}");
    }
    // One decision that must be durable before the app goes on (a break-glass grant).
    let (id, delivery) = client.record_durable(json!({
        "actor": {"type": "user", "id": "alice"},
        "action": "role.grant",
        "resource": {"type": "role", "id": "admin"},
        "outcome": "allow",
        "reason": "break-glass ticket 4711",
        "source": "authz-app",
    }))?;
    match delivery {
        Delivery::Stored { index } => println!("break-glass grant {id} is at log index {index}"),
        Delivery::Spooled => {
            println!("break-glass grant {id} is spooled in {spool} (log unreachable)")
        }
    }
    client.flush(Duration::from_secs(30))?;
    let stats = client.stats();
    println!(
        "stored {} spooled {} (spool holds {} bytes)",
        stats.stored, stats.spooled, stats.spool_bytes
    );
    client.close();
    Ok(())
}
