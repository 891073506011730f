//! `stele append [FILE]`: send NDJSON events to `POST /v1/events` in batches and print the
//! acknowledgements.
//!
//! Each batch is one atomic request: either all of its events are in the log or none. So when
//! the server refuses a batch, everything before it is appended and nothing after it is.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::client::{Client, DEFAULT_URL};
use crate::exit;

/// A batch is sent early once its body reaches this size, to stay under the server's default
/// 16 MiB body limit whatever the events' size.
const MAX_BATCH_BYTES: usize = 8 << 20;
/// Inputs above this size get a progress bar even when stderr is not a terminal (indicatif
/// still draws nothing where no one can see it).
const PROGRESS_MIN_BYTES: u64 = 1 << 20;
/// Attempts of one batch answered 503 (back-pressure) before giving up.
const MAX_ATTEMPTS: u32 = 6;
/// Longest wait honoured from a Retry-After header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Arguments of `stele append`.
#[derive(Debug, Args)]
pub struct AppendArgs {
    /// NDJSON file, one event per line; `-` or nothing reads standard input.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// Server URL.
    #[arg(long, default_value = DEFAULT_URL)]
    url: String,
    /// Events per request.
    #[arg(long, value_name = "LINES", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
    /// Do not print the acknowledgements.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Deserialize)]
struct AppendResponse {
    entries: Vec<Value>,
}

/// Running totals, for the summary and for saying how far a failed run got.
#[derive(Default)]
struct Totals {
    appended: u64,
    duplicates: u64,
    first: Option<u64>,
    last: Option<u64>,
}

impl Totals {
    fn add(&mut self, ack: &Value) {
        if ack
            .get("duplicate")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            self.duplicates += 1;
            return;
        }
        self.appended += 1;
        let index = ack.get("index").and_then(Value::as_u64);
        if self.first.is_none() {
            self.first = index;
        }
        self.last = index.or(self.last);
    }

    fn summary(&self) -> String {
        let plural = |n: u64, what: &str| {
            if n == 1 {
                format!("1 {what}")
            } else {
                format!("{n} {what}s")
            }
        };
        let range = match (self.first, self.last) {
            (Some(a), Some(b)) if a == b => format!(" at index {a}"),
            (Some(a), Some(b)) => format!(" at indexes {a}..={b}"),
            _ => String::new(),
        };
        format!(
            "appended {}{range}; {} already in the log",
            plural(self.appended, "event"),
            plural(self.duplicates, "duplicate")
        )
    }
}

/// One batch being built: the NDJSON body and the input line of each of its events.
#[derive(Default)]
struct Batch {
    body: Vec<u8>,
    lines: Vec<u64>,
}

/// Runs `stele append`.
///
/// # Errors
/// Unreadable input or unreachable server (exit 2). An error answer is reported on stderr and
/// gives exit code 1.
pub fn run(args: AppendArgs) -> Result<ExitCode> {
    let client = Client::new(&args.url)?;
    let (input, len, name): (Box<dyn Read>, Option<u64>, String) = match &args.file {
        Some(p) if p.as_os_str() != "-" => {
            let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len, p.display().to_string())
        }
        _ => (
            Box::new(std::io::stdin().lock()),
            None,
            "standard input".into(),
        ),
    };
    let progress = progress_bar(len);
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut totals = Totals::default();
    let mut batch = Batch::default();
    let mut line = Vec::new();
    let mut line_no = 0u64;
    let batch_len = usize::try_from(args.batch).unwrap_or(usize::MAX);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {name}"))?;
        progress.inc(u64::try_from(n).unwrap_or(u64::MAX));
        let eof = n == 0;
        if !eof {
            line_no += 1;
            if !line.trim_ascii().is_empty() {
                batch.body.extend_from_slice(line.trim_ascii_end());
                batch.body.push(b'\n');
                batch.lines.push(line_no);
            }
        }
        let full = batch.lines.len() >= batch_len || batch.body.len() >= MAX_BATCH_BYTES;
        if (full || eof) && !batch.lines.is_empty() {
            let acks = match send(&client, &batch)? {
                Ok(acks) => acks,
                Err(refusal) => {
                    progress.finish_and_clear();
                    out.flush().context("writing to stdout")?;
                    refusal.report(&batch, &totals);
                    return Ok(ExitCode::from(exit::FAILURE));
                }
            };
            for ack in &acks {
                totals.add(ack);
                if !args.quiet {
                    writeln!(out, "{ack}").context("writing to stdout")?;
                }
            }
            out.flush().context("writing to stdout")?;
            progress.set_message(format!("{} events", totals.appended + totals.duplicates));
            batch = Batch::default();
        }
        if eof {
            break;
        }
    }
    progress.finish_and_clear();
    eprintln!("{}", totals.summary());
    Ok(ExitCode::SUCCESS)
}

fn progress_bar(len: Option<u64>) -> ProgressBar {
    let attended = std::io::stderr().is_terminal();
    match len {
        Some(len) if len > PROGRESS_MIN_BYTES || attended => {
            let bar = ProgressBar::new(len);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        }
        None if attended => {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {bytes} read, {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        }
        _ => ProgressBar::hidden(),
    }
}

/// The server's refusal of a batch.
struct Refusal {
    status: u16,
    body: String,
}

impl Refusal {
    /// Prints the server's answer, maps its NDJSON line numbers back to input lines, and says
    /// how far the run got.
    fn report(&self, batch: &Batch, totals: &Totals) {
        let first = batch.lines.first().copied().unwrap_or(0);
        let last = batch.lines.last().copied().unwrap_or(0);
        eprintln!(
            "error: the server refused the batch of input lines {first}..={last}: HTTP {}",
            self.status
        );
        eprintln!("{}", self.body);
        if let Ok(v) = serde_json::from_str::<Value>(&self.body) {
            let to_input = |l: &Value| {
                l.as_u64()
                    .and_then(|l| usize::try_from(l).ok())
                    .and_then(|l| batch.lines.get(l.checked_sub(1)?))
                    .copied()
            };
            let problems = v
                .get("problems")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for p in problems.iter().take(20) {
                if let Some(input) = p.get("line").and_then(to_input) {
                    let field =
                        |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    eprintln!(
                        "  input line {input}: {}: {}",
                        field("path"),
                        field("message")
                    );
                }
            }
            if let Some(input) = v.get("line").and_then(to_input) {
                eprintln!(
                    "  input line {input}: {}",
                    v.get("error").and_then(Value::as_str).unwrap_or("")
                );
            }
        }
        eprintln!(
            "before this batch: {}; nothing from this batch on was appended",
            totals.summary()
        );
    }
}

/// Sends one batch, retrying 503 answers after their Retry-After. `Ok(Err(_))` is the server's
/// refusal; `Err(_)` a failure to talk to it at all.
fn send(client: &Client, batch: &Batch) -> Result<Result<Vec<Value>, Refusal>> {
    let mut attempt = 1;
    loop {
        let req = client
            .post("/v1/events")
            .header(CONTENT_TYPE, "application/x-ndjson")
            .body(batch.body.clone());
        let resp = client.send(req)?;
        let status = resp.status();
        if status == StatusCode::SERVICE_UNAVAILABLE && attempt < MAX_ATTEMPTS {
            let wait = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs)
                .min(MAX_RETRY_AFTER);
            eprintln!("server busy (HTTP 503); retrying in {wait:?} (attempt {attempt} of {MAX_ATTEMPTS})");
            std::thread::sleep(wait);
            attempt += 1;
            continue;
        }
        let url = client.url("/v1/events");
        let body = resp
            .text()
            .with_context(|| format!("POST {url}: reading the answer"))?;
        if !status.is_success() {
            return Ok(Err(Refusal {
                status: status.as_u16(),
                body: body.trim().to_string(),
            }));
        }
        let parsed: AppendResponse = serde_json::from_str(&body).map_err(|e| {
            crate::exit::Failure::verification(format!("POST {url}: malformed answer: {e}"))
        })?;
        if parsed.entries.len() != batch.lines.len() {
            return Err(crate::exit::Failure::verification(format!(
                "POST {url}: {} acknowledgements for {} events",
                parsed.entries.len(),
                batch.lines.len()
            ))
            .into());
        }
        return Ok(Ok(parsed.entries));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn totals_count_duplicates_apart_and_track_the_index_range() {
        let mut t = Totals::default();
        assert_eq!(
            t.summary(),
            "appended 0 events; 0 duplicates already in the log"
        );
        t.add(&json!({"index": 7}));
        t.add(&json!({"index": 3, "duplicate": true}));
        assert_eq!(
            t.summary(),
            "appended 1 event at index 7; 1 duplicate already in the log"
        );
        t.add(&json!({"index": 8}));
        assert_eq!(
            (t.appended, t.duplicates, t.first, t.last),
            (2, 1, Some(7), Some(8))
        );
        assert_eq!(
            t.summary(),
            "appended 2 events at indexes 7..=8; 1 duplicate already in the log"
        );
    }
}
