//! `stele token create|list|revoke`: manage API tokens, offline on a data directory or over
//! the admin API of a running server (`--url`, with an admin token in `--token` or
//! `STELE_TOKEN`).
//!
//! Offline changes go to `DATA/auth/tokens.json` under its lock, so they are safe while a
//! server runs on the same directory; the server notices the change on its next request
//! (a revocation takes effect at once) and records it in the log.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use stele_auth::{NewToken, Role, TokenId, TokenRecord, TokenStore};
use stele_core::timestamp::Timestamp;

use crate::client::{http_failure, Client};
use crate::{paths, units};

/// Arguments of `stele token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; prints it (only now) alone on the last line of stdout. With --cert,
    /// bind a client certificate (mTLS) instead and print the new principal's id.
    Create(CreateArgs),
    /// List tokens, one a line: id, role, tenants, source, expiry, status (never a secret).
    List(ListArgs),
    /// Revoke a token (or certificate principal) by id; the server refuses it from its next
    /// request on.
    Revoke(RevokeArgs),
}

/// Where the tokens are managed.
#[derive(Debug, Args)]
struct Target {
    /// Data directory, worked on offline [default: $STELE_DATA, $XDG_DATA_HOME/stele or
    /// ~/.local/share/stele].
    #[arg(long, value_name = "DIR", conflicts_with = "url")]
    data: Option<PathBuf>,
    /// A running server's URL, managed over its admin API with an admin --token.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The token's role.
    #[arg(long, value_parser = parse_role)]
    role: Role,
    /// A tenant: for a reader, one it may read (at least one); for a writer, one it may
    /// write (none: any; exactly one is stamped on events that name none). Repeatable.
    #[arg(long = "tenant", value_name = "T")]
    tenants: Vec<String>,
    /// For a writer: the source stamped on, and required of, every event it writes.
    #[arg(long, value_name = "S")]
    source: Option<String>,
    /// When it stops working: a duration from now (30d, 12h, 90m, 1w) or an RFC 3339 time.
    #[arg(long, value_name = "DURATION")]
    expires: Option<String>,
    /// A description, shown by list.
    #[arg(long, value_name = "TEXT")]
    label: Option<String>,
    /// Instead of a token, bind the client certificate in this PEM file (its SHA-256
    /// fingerprint) to the principal: over mTLS (`stele serve --client-ca`) it then
    /// authenticates without a token. No secret is made; the id is printed instead.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Print JSON (one object per line, every field) instead of columns.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Args)]
struct RevokeArgs {
    /// The token id (the 16 hex digits after `stele_`).
    #[arg(value_name = "ID")]
    id: String,
    #[command(flatten)]
    target: Target,
}

/// Runs `stele token`.
///
/// # Errors
/// Bad arguments or an unusable data directory (exit 2); an error answer of the server
/// (exit 1).
pub fn run(args: TokenArgs) -> Result<ExitCode> {
    match args.command {
        TokenCommand::Create(a) => create(a),
        TokenCommand::List(a) => list(&a),
        TokenCommand::Revoke(a) => revoke(&a),
    }
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: stele_auth::AuthError| e.to_string())
}

/// Parses `--expires`: an RFC 3339 time, a number of days (`30d`) or weeks (`2w`), or a
/// duration of the other commands (`12h`, `90m`, `1h30m`).
fn parse_expiry(s: &str, now: Timestamp) -> Result<Timestamp> {
    if let Ok(at) = Timestamp::parse(s) {
        return Ok(at);
    }
    let bad = || format!("--expires {s:?} is not a duration (30d, 12h, 90m) or an RFC 3339 time");
    let secs = match s
        .strip_suffix('d')
        .map(|n| (n, 86_400u64))
        .or_else(|| s.strip_suffix('w').map(|n| (n, 604_800)))
    {
        Some((n, unit)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit))
            .with_context(bad)?,
        _ => units::parse_duration(s)
            .map_err(|_| anyhow::anyhow!(bad()))?
            .as_secs(),
    };
    i64::try_from(secs)
        .ok()
        .and_then(|s| s.checked_mul(1_000_000_000))
        .and_then(|ns| now.unix_nanos().checked_add(ns))
        .map(Timestamp::from_unix_nanos)
        .with_context(bad)
}

fn now() -> Result<Timestamp> {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    Ok(Timestamp::from_unix_nanos(
        i64::try_from(d.as_nanos()).context("the system clock is past 2262")?,
    ))
}

/// The token store of the target's data directory, which must be a Stele data directory (a
/// typo in --data must not scatter token files elsewhere).
fn store(target: &Target) -> Result<TokenStore> {
    let dir = paths::data_dir(target.data.as_deref())?;
    anyhow::ensure!(
        stele_store::layout::Layout::new(&dir).identity().is_file(),
        "{} is not a Stele data directory (it has no stele.json); start `stele serve --data {}` once, or run `stele keygen --data {}`",
        dir.display(),
        dir.display(),
        dir.display()
    );
    Ok(TokenStore::new(&dir))
}

fn create(args: CreateArgs) -> Result<ExitCode> {
    let now = now()?;
    let expires = args
        .expires
        .as_deref()
        .map(|e| parse_expiry(e, now))
        .transpose()?;
    let certificate_sha256 = args
        .cert
        .as_deref()
        .map(certificate_fingerprint)
        .transpose()?;
    let spec = NewToken {
        role: Some(args.role),
        tenants: args.tenants,
        source: args.source,
        label: args.label,
        expires,
        certificate_sha256,
    };
    if spec.certificate_sha256.is_some() {
        return create_certificate_principal(&spec, &args.target, now);
    }
    let (token, description) = match &args.target.url {
        Some(url) => {
            let answer = create_over_api(url, &spec, now)?;
            let token = answer
                .get("token")
                .and_then(Value::as_str)
                .context("the server's answer holds no token")?
                .to_owned();
            (token, describe_json(&answer))
        }
        None => {
            let store = store(&args.target)?;
            let (token, record) = store
                .create(&spec, "cli", now)
                .with_context(|| format!("creating a token in {}", store.path().display()))?;
            (token.expose().to_owned(), describe(&record, now))
        }
    };
    eprintln!("created token {description}");
    eprintln!("the token is shown only now; keep it secret:");
    let mut out = std::io::stdout().lock();
    writeln!(out, "{token}").context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Asks the admin API at `url` for the token or certificate principal `spec` describes;
/// the server's JSON answer. `spec` is checked here first, so a mistake is told before the
/// server is asked.
fn create_over_api(url: &str, spec: &NewToken, now: Timestamp) -> Result<Value> {
    spec.validate(now)?;
    let client = Client::new(url)?;
    let mut body = json!({"role": spec.role, "tenants": spec.tenants});
    if let Some(c) = &spec.certificate_sha256 {
        body["certificate_sha256"] = json!(c);
    }
    for (k, v) in [("source", &spec.source), ("label", &spec.label)] {
        if let Some(v) = v {
            body[k] = json!(v);
        }
    }
    if let Some(e) = spec.expires {
        body["expires"] = json!(e);
    }
    let resp = client.send(client.post("/v1/admin/tokens").json(&body))?;
    if !resp.status().is_success() {
        return Err(http_failure("POST", resp).into());
    }
    resp.json().context("reading the server's answer")
}

/// The SHA-256 fingerprint of the first certificate of a PEM file (the client's own; any
/// further ones are its chain).
fn certificate_fingerprint(path: &std::path::Path) -> Result<stele_auth::CertFingerprint> {
    let certs = stele_server::tls::read_certificates("certificate", path)?;
    let leaf = certs
        .first()
        .with_context(|| format!("{} holds no certificate", path.display()))?;
    Ok(stele_auth::CertFingerprint::of_der(leaf.as_ref()))
}

/// `stele token create --cert FILE`: binds the certificate to a new principal and prints its
/// id alone on the last line of stdout.
fn create_certificate_principal(
    spec: &NewToken,
    target: &Target,
    now: Timestamp,
) -> Result<ExitCode> {
    let (id, description) = match &target.url {
        Some(url) => {
            let answer = create_over_api(url, spec, now)?;
            let id = answer
                .get("id")
                .and_then(Value::as_str)
                .context("the server's answer holds no id")?
                .to_owned();
            (id, describe_json(&answer))
        }
        None => {
            let store = store(target)?;
            let record = store
                .register_certificate(spec, "cli", now)
                .with_context(|| {
                    format!("registering a certificate in {}", store.path().display())
                })?;
            (record.id.to_string(), describe(&record, now))
        }
    };
    eprintln!("created certificate principal cert:{id}: {description}");
    let mut out = std::io::stdout().lock();
    writeln!(out, "{id}").context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn list(args: &ListArgs) -> Result<ExitCode> {
    let rows: Vec<Value> = match &args.target.url {
        Some(url) => {
            let answer: Value = Client::new(url)?.get_json("/v1/admin/tokens")?;
            answer
                .get("tokens")
                .and_then(Value::as_array)
                .cloned()
                .context("the server's answer holds no token list")?
        }
        None => {
            let now = now()?;
            let store = store(&args.target)?;
            store
                .load()
                .with_context(|| format!("reading {}", store.path().display()))?
                .tokens
                .iter()
                .map(|r| stele_server::auth::admin::describe(r, now))
                .collect()
        }
    };
    let mut out = std::io::stdout().lock();
    for row in &rows {
        let line = if args.json {
            row.to_string()
        } else {
            describe_json(row)
        };
        writeln!(out, "{line}").context("writing to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn revoke(args: &RevokeArgs) -> Result<ExitCode> {
    let id = TokenId::parse(&args.id)?;
    let already = match &args.target.url {
        Some(url) => {
            let client = Client::new(url)?;
            let resp = client.send(client.delete(&format!("/v1/admin/tokens/{id}")))?;
            if !resp.status().is_success() {
                return Err(http_failure("DELETE", resp).into());
            }
            let answer: Value = resp.json().context("reading the server's answer")?;
            answer.get("already_revoked").and_then(Value::as_bool) == Some(true)
        }
        None => {
            let store = store(&args.target)?;
            let (_, newly) = store
                .revoke(&id, "cli", now()?)
                .with_context(|| format!("revoking in {}", store.path().display()))?;
            !newly
        }
    };
    if already {
        println!("token {id} was already revoked");
    } else {
        println!("revoked token {id}");
    }
    Ok(ExitCode::SUCCESS)
}

/// One line about a token: `ID ROLE TENANTS SOURCE EXPIRES STATUS`, `-` for none.
fn describe(record: &TokenRecord, now: Timestamp) -> String {
    describe_json(&stele_server::auth::admin::describe(record, now))
}

fn describe_json(v: &Value) -> String {
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
    let tenants: Vec<&str> = v
        .get("tenants")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let tenants = if tenants.is_empty() {
        "-".to_owned()
    } else {
        tenants.join(",")
    };
    let expires = v
        .get("expires")
        .and_then(Value::as_str)
        .unwrap_or("never")
        .to_owned();
    let line = format!(
        "{} {} {tenants} {} {expires} {}",
        text("id"),
        text("role"),
        text("source"),
        text("status")
    );
    // A certificate principal: its fingerprint as a seventh column.
    match v.get("certificate_sha256").and_then(Value::as_str) {
        Some(fp) => format!("{line} cert={fp}"),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_takes_days_weeks_durations_and_times() {
        let now = Timestamp::from_unix_nanos(1_800_000_000_000_000_000);
        let plus = |secs: i64| Timestamp::from_unix_nanos(now.unix_nanos() + secs * 1_000_000_000);
        assert_eq!(parse_expiry("30d", now).unwrap(), plus(30 * 86_400));
        assert_eq!(parse_expiry("2w", now).unwrap(), plus(14 * 86_400));
        assert_eq!(parse_expiry("1h30m", now).unwrap(), plus(5400));
        assert_eq!(
            parse_expiry("2030-01-01T00:00:00Z", now).unwrap(),
            Timestamp::parse("2030-01-01T00:00:00Z").unwrap()
        );
        for bad in ["", "d", "-1d", "soon", "1.5d"] {
            assert!(parse_expiry(bad, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn list_lines_start_with_id_role_tenants_source_expiry() {
        let v = json!({"id": "00112233445566aa", "role": "writer", "tenants": ["acme", "globex"],
                       "source": "gw-1", "expires": null, "status": "active"});
        assert_eq!(
            describe_json(&v),
            "00112233445566aa writer acme,globex gw-1 never active"
        );
    }
}
