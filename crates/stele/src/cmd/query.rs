//! `stele query`: search a running log through `GET /v1/events` (or count through
//! `GET /v1/events/count`) and print the results as a table, JSON, NDJSON or CSV.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::client::{Client, DEFAULT_URL};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// The server's JSON answer (with `--all`, every page's events in one answer).
    Json,
    /// One stored event per line, with `index` and `leaf_hash`.
    Ndjson,
    /// RFC 4180 CSV with a header line.
    Csv,
}

/// Arguments of `stele query`. Filters are ANDed; see `docs/query.md`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Server URL.
    #[arg(long, default_value = DEFAULT_URL)]
    url: String,
    /// Actor id.
    #[arg(long)]
    actor: Option<String>,
    /// Actor type: user, service or system.
    #[arg(long)]
    actor_type: Option<String>,
    /// Action, exact, or a prefix ending in `*` (`role.*`).
    #[arg(long)]
    action: Option<String>,
    /// Resource type.
    #[arg(long)]
    resource_type: Option<String>,
    /// Resource id.
    #[arg(long)]
    resource_id: Option<String>,
    /// Outcome: allow, deny or error.
    #[arg(long)]
    outcome: Option<String>,
    /// Tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Source (emitting system).
    #[arg(long)]
    source: Option<String>,
    /// Session id.
    #[arg(long)]
    session: Option<String>,
    /// Client IP.
    #[arg(long)]
    ip: Option<String>,
    /// Commit time at or after (RFC 3339, `2026-03-01T12:00Z` or `2026-03-01`).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Commit time before (exclusive).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Full text: words that must all occur in reason or context.
    #[arg(long, short = 'q', value_name = "WORDS")]
    q: Option<String>,
    /// Results per page (1-1000).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Oldest first (default: newest first).
    #[arg(long)]
    asc: bool,
    /// Follow the cursors and print every matching event, not just the first page.
    #[arg(long)]
    all: bool,
    /// Continue from this cursor (`next_cursor` of an earlier answer).
    #[arg(long)]
    cursor: Option<String>,
    /// Attach inclusion proofs against this tree size (or `latest`).
    #[arg(long, value_name = "SIZE|latest")]
    proof_tree_size: Option<String>,
    /// Count instead of listing.
    #[arg(long)]
    count: bool,
    /// With --count: group by actor, action, outcome, hour (or another field).
    #[arg(long, value_name = "FIELD", requires = "count")]
    group_by: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

impl QueryArgs {
    fn filters(&self) -> Vec<(&'static str, String)> {
        let fields = [
            ("actor", &self.actor),
            ("actor_type", &self.actor_type),
            ("action", &self.action),
            ("resource_type", &self.resource_type),
            ("resource_id", &self.resource_id),
            ("outcome", &self.outcome),
            ("tenant", &self.tenant),
            ("source", &self.source),
            ("session", &self.session),
            ("ip", &self.ip),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
        ];
        fields
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
            .collect()
    }
}

/// `path?query` with the pairs URL-encoded.
pub fn with_query(path: &str, pairs: &[(&str, String)]) -> Result<String> {
    let mut url = reqwest::Url::parse("http://localhost/").context("building a URL")?;
    url.set_path(path);
    if !pairs.is_empty() {
        url.query_pairs_mut()
            .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
    }
    Ok(match url.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    })
}

/// Runs `stele query`.
///
/// # Errors
/// The server's error answer, e.g. 400 for a bad filter (exit 1); an unreachable server
/// (exit 2).
pub fn run(args: QueryArgs) -> Result<ExitCode> {
    let client = Client::new(&args.url)?;
    let mut pairs = args.filters();
    let mut out = std::io::stdout().lock();
    if args.count {
        if let Some(g) = &args.group_by {
            pairs.push(("group_by", g.clone()));
        }
        let answer: Value = client.get_json(&with_query("/v1/events/count", &pairs)?)?;
        warn_lag(&answer);
        print_counts(&mut out, &answer, args.format)?;
        return Ok(ExitCode::SUCCESS);
    }
    pairs.push(("limit", args.limit.to_string()));
    pairs.push(("order", if args.asc { "asc" } else { "desc" }.to_owned()));
    if let Some(n) = &args.proof_tree_size {
        pairs.push(("proof_tree_size", n.clone()));
    }
    let mut cursor = args.cursor.clone();
    let mut all = Vec::new();
    let mut last: Value;
    let mut printed_header = false;
    loop {
        let mut page_pairs = pairs.clone();
        if let Some(c) = &cursor {
            page_pairs.push(("cursor", c.clone()));
        }
        last = client.get_json(&with_query("/v1/events", &page_pairs)?)?;
        let events = last["events"].as_array().cloned().unwrap_or_default();
        match args.format {
            Format::Json => all.extend(events),
            Format::Ndjson => {
                for e in &events {
                    writeln!(out, "{e}")?;
                }
            }
            Format::Csv => {
                if !printed_header {
                    writeln!(out, "{}", COLUMNS.join(","))?;
                    printed_header = true;
                }
                for e in &events {
                    let row: Vec<String> = columns(e).iter().map(|c| csv_field(c)).collect();
                    writeln!(out, "{}", row.join(","))?;
                }
            }
            Format::Table => {
                print_table(&mut out, &events, !printed_header)?;
                printed_header = true;
            }
        }
        cursor = last["next_cursor"].as_str().map(str::to_owned);
        if !args.all || cursor.is_none() {
            break;
        }
    }
    warn_lag(&last);
    if args.format == Format::Json {
        if let Some(obj) = last.as_object_mut() {
            obj.insert("events".to_owned(), Value::Array(all));
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&last)?)?;
    } else if args.format == Format::Table {
        if let Some(c) = &cursor {
            eprintln!("more results: --cursor {c} (or --all)");
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn warn_lag(answer: &Value) {
    if let Some(lag) = answer["index_lag"].as_u64().filter(|&l| l > 0) {
        eprintln!("note: the index was {lag} entries behind the log when this query ran");
    }
}

const COLUMNS: [&str; 12] = [
    "index",
    "time",
    "actor_type",
    "actor",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "tenant",
    "source",
    "reason",
    "leaf_hash",
];

fn columns(e: &Value) -> [String; 12] {
    let s = |p: &str| match e.pointer(p) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    };
    [
        s("/index"),
        s("/time"),
        s("/actor/type"),
        s("/actor/id"),
        s("/action"),
        s("/resource/type"),
        s("/resource/id"),
        s("/outcome"),
        s("/tenant"),
        s("/source"),
        s("/reason"),
        s("/leaf_hash"),
    ]
}

/// RFC 4180: quote a field holding a comma, quote or line break; double inner quotes.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn print_table(out: &mut impl Write, events: &[Value], header: bool) -> Result<()> {
    if header {
        writeln!(
            out,
            "{:>9}  {:<30}  {:<20}  {:<18}  {:<28}  {:<7}  TENANT",
            "INDEX", "TIME", "ACTOR", "ACTION", "RESOURCE", "OUTCOME"
        )?;
    }
    for e in events {
        let c = columns(e);
        writeln!(
            out,
            "{:>9}  {:<30}  {:<20}  {:<18}  {:<28}  {:<7}  {}",
            c[0],
            c[1],
            clip(&c[3], 20),
            clip(&c[4], 18),
            clip(&format!("{}/{}", c[5], c[6]), 28),
            c[7],
            c[8]
        )?;
    }
    Ok(())
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn print_counts(out: &mut impl Write, answer: &Value, format: Format) -> Result<()> {
    let empty = serde_json::Map::new();
    let groups = answer["groups"].as_object().unwrap_or(&empty);
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(answer)?)?,
        Format::Ndjson => {
            for (k, v) in groups {
                writeln!(out, "{}", serde_json::json!({"key": k, "count": v}))?;
            }
            writeln!(out, "{}", serde_json::json!({"total": answer["total"]}))?;
        }
        Format::Csv => {
            writeln!(out, "key,count")?;
            for (k, v) in groups {
                writeln!(out, "{},{v}", csv_field(k))?;
            }
        }
        Format::Table => {
            let mut rows: Vec<(&String, u64)> = groups
                .iter()
                .map(|(k, v)| (k, v.as_u64().unwrap_or(0)))
                .collect();
            rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            for (k, v) in rows {
                writeln!(out, "{v:>12}  {k}")?;
            }
            writeln!(out, "{:>12}  total", answer["total"])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn query_strings_are_encoded() {
        let q = with_query(
            "/v1/events",
            &[("action", "role.*".into()), ("q", "a b&c".into())],
        );
        assert_eq!(
            q.ok().as_deref(),
            Some("/v1/events?action=role.*&q=a+b%26c")
        );
    }
}
