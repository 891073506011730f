//! `stele replay`: who held which role (and so which permissions) at an instant, through
//! `GET /v1/replay`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{ArgGroup, Args, ValueEnum};
use serde_json::Value;

use crate::client::{Client, DEFAULT_URL};
use crate::cmd::query::with_query;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// The server's JSON answer.
    Json,
}

/// Arguments of `stele replay`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("who").required(true).args(["principal", "role", "permission"])))]
pub struct ReplayArgs {
    /// Server URL.
    #[arg(long, default_value = DEFAULT_URL)]
    url: String,
    /// The instant (RFC 3339, `2026-03-01T12:00Z` or `2026-03-01`), inclusive.
    #[arg(long, value_name = "TIME")]
    as_of: String,
    /// List the roles this principal held.
    #[arg(long, value_name = "ID")]
    principal: Option<String>,
    /// List the principals that held this role.
    #[arg(long, value_name = "NAME")]
    role: Option<String>,
    /// List the principals that held a role giving this permission (from `policy.update`).
    #[arg(long, value_name = "NAME")]
    permission: Option<String>,
    /// With --role or --permission: only this scope type (unscoped grants are included).
    #[arg(long)]
    scope_type: Option<String>,
    /// With --role and --scope-type: only this scope id.
    #[arg(long, requires = "scope_type")]
    scope_id: Option<String>,
    /// Attach inclusion proofs of the establishing entries against this tree size (or
    /// `latest`).
    #[arg(long, value_name = "SIZE|latest")]
    proof_tree_size: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// Runs `stele replay`.
///
/// # Errors
/// The server's error answer (exit 1); an unreachable server (exit 2).
pub fn run(args: ReplayArgs) -> Result<ExitCode> {
    let client = Client::new(&args.url)?;
    let mut pairs = vec![("as_of", args.as_of.clone())];
    for (k, v) in [
        ("principal", &args.principal),
        ("role", &args.role),
        ("permission", &args.permission),
        ("scope_type", &args.scope_type),
        ("scope_id", &args.scope_id),
        ("proof_tree_size", &args.proof_tree_size),
    ] {
        if let Some(v) = v {
            pairs.push((k, v.clone()));
        }
    }
    let answer: Value = client.get_json(&with_query("/v1/replay", &pairs)?)?;
    let mut out = std::io::stdout().lock();
    if args.format == Format::Json {
        writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(lag) = answer["index_lag"].as_u64().filter(|&l| l > 0) {
        eprintln!("note: the index was {lag} entries behind the log when this replay ran");
    }
    let as_of = answer["as_of"].as_str().unwrap_or("?");
    let (rows, first) = if let Some(p) = answer["principal"].as_str() {
        let active = if answer["active"] == Value::Bool(true) {
            "active"
        } else {
            "DEACTIVATED (grants listed are not in force)"
        };
        writeln!(out, "{p} as of {as_of}: {active}")?;
        (
            answer["roles"].as_array().cloned().unwrap_or_default(),
            "ROLE",
        )
    } else {
        let what = match answer["permission"].as_str() {
            Some(p) => format!("permission {p}"),
            None => answer["role"].as_str().unwrap_or("?").to_owned(),
        };
        writeln!(out, "{what} as of {as_of}:")?;
        (
            answer["principals"].as_array().cloned().unwrap_or_default(),
            "PRINCIPAL",
        )
    };
    writeln!(
        out,
        "{first:<24}  {:<28}  {:<30}  {:>9}  {:<32}  VIA",
        "SCOPE", "GRANTED AT", "INDEX", "PERMISSIONS (DEFINED AT ENTRY)"
    )?;
    for g in &rows {
        let name = if first == "ROLE" {
            g["role"].as_str().unwrap_or("").to_owned()
        } else if answer["permission"].is_string() {
            format!(
                "{} ({})",
                g["principal"].as_str().unwrap_or(""),
                g["role"].as_str().unwrap_or("")
            )
        } else {
            g["principal"].as_str().unwrap_or("").to_owned()
        };
        let permissions = match &g["permissions"] {
            Value::Object(p) => format!(
                "{} ({})",
                p.get("set")
                    .and_then(Value::as_array)
                    .map(|s| s
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","))
                    .unwrap_or_default(),
                p.get("index").and_then(Value::as_u64).unwrap_or(0)
            ),
            _ => "-".to_owned(),
        };
        let scope = match &g["scope"] {
            Value::Object(s) => format!(
                "{}/{}",
                s.get("type").and_then(Value::as_str).unwrap_or(""),
                s.get("id").and_then(Value::as_str).unwrap_or("")
            ),
            _ => "*".to_owned(),
        };
        let via = match &g["via"] {
            Value::Object(v) => format!(
                "group {} (member since entry {})",
                v.get("group").and_then(Value::as_str).unwrap_or(""),
                v.get("index").and_then(Value::as_u64).unwrap_or(0)
            ),
            _ => String::new(),
        };
        writeln!(
            out,
            "{name:<24}  {scope:<28}  {:<30}  {:>9}  {permissions:<32}  {via}",
            g["granted_at"].as_str().unwrap_or(""),
            g["index"]
        )?;
    }
    if rows.is_empty() {
        writeln!(out, "(none)")?;
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}
