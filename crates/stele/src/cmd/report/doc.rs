//! A tiny document model — headings, paragraphs, field lists, tables — rendered as Markdown
//! or as one self-contained, print-friendly HTML page. Every text is escaped for its format,
//! since event fields are whatever clients sent.

use std::fmt::Write as _;

/// A piece of text and how to show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// Ordinary text.
    Text(String),
    /// Monospace: hashes, keys, timestamps, commands.
    Mono(String),
    /// A count, right-aligned in tables.
    Num(u64),
    /// A reassuring status.
    Good(String),
    /// A warning status.
    Bad(String),
}

impl Cell {
    /// Ordinary text.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }
    /// Monospace text.
    pub fn mono(s: impl Into<String>) -> Cell {
        Cell::Mono(s.into())
    }
    /// A count.
    pub fn num(n: u64) -> Cell {
        Cell::Num(n)
    }
    /// A good status.
    pub fn good(s: impl Into<String>) -> Cell {
        Cell::Good(s.into())
    }
    /// A warning.
    pub fn bad(s: impl Into<String>) -> Cell {
        Cell::Bad(s.into())
    }
}

/// A block of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A section heading.
    Heading(String),
    /// A paragraph of cells run together.
    Para(Vec<Cell>),
    /// Label / value pairs.
    Fields(Vec<(String, Cell)>),
    /// A table; `empty` is shown instead when it has no rows.
    Table {
        /// Column titles.
        head: Vec<&'static str>,
        /// Rows, each as many cells as `head`.
        rows: Vec<Vec<Cell>>,
        /// Text for a table without rows.
        empty: String,
    },
}

/// Escapes Markdown's inline specials and table pipes, and turns line breaks into spaces.
fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '|' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

fn md_cell(c: &Cell) -> String {
    match c {
        Cell::Text(s) => md_escape(s),
        Cell::Mono(s) if !s.contains('`') && !s.contains('\n') && !s.contains('|') => {
            format!("`{s}`")
        }
        Cell::Mono(s) => md_escape(s),
        Cell::Num(n) => n.to_string(),
        Cell::Good(s) => format!("**{}**", md_escape(s)),
        Cell::Bad(s) => format!("**⚠ {}**", md_escape(s)),
    }
}

/// The document as GitHub-flavoured Markdown.
pub fn markdown(title: &str, blocks: &[Block]) -> String {
    let mut out = format!("# {}\n", md_escape(title));
    for block in blocks {
        out.push('\n');
        match block {
            Block::Heading(h) => {
                let _ = writeln!(out, "## {}", md_escape(h));
            }
            Block::Para(cells) => {
                let text: String = cells.iter().map(md_cell).collect();
                let _ = writeln!(out, "{text}");
            }
            Block::Fields(fields) => {
                for (label, value) in fields {
                    let _ = writeln!(out, "- {}: {}", md_escape(label), md_cell(value));
                }
            }
            Block::Table { head, rows, empty } => {
                if rows.is_empty() {
                    let _ = writeln!(out, "{}", md_escape(empty));
                    continue;
                }
                let _ = writeln!(out, "| {} |", head.join(" | "));
                let _ = writeln!(out, "|{}", "---|".repeat(head.len()));
                for row in rows {
                    let cells: Vec<String> = row.iter().map(md_cell).collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                }
            }
        }
    }
    out
}

/// Escapes text for HTML element content and attribute values.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn html_cell(c: &Cell) -> String {
    match c {
        Cell::Text(s) => html_escape(s),
        Cell::Mono(s) => format!("<code>{}</code>", html_escape(s)),
        Cell::Num(n) => n.to_string(),
        Cell::Good(s) => format!("<strong class=\"good\">{}</strong>", html_escape(s)),
        Cell::Bad(s) => format!("<strong class=\"bad\">⚠ {}</strong>", html_escape(s)),
    }
}

/// Print-friendly styles: A4 margins, table headers repeated on each page, rows kept whole.
const STYLE: &str = "\
body{font:10.5pt/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#111;max-width:60em;margin:2em auto;padding:0 1em}
h1{font-size:17pt;margin-bottom:.2em}
h2{font-size:13pt;border-bottom:1px solid #888;padding-bottom:.1em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;margin:.4em 0 1em}
th,td{border:1px solid #aaa;padding:.2em .45em;text-align:left;vertical-align:top}
th{background:#eee}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.fields th{width:14em;font-weight:600}
code{font:9pt ui-monospace,'SFMono-Regular',Menlo,Consolas,monospace;word-break:break-all}
.good{color:#05620f}
.bad{color:#a10000}
@page{size:A4;margin:14mm}
@media print{body{margin:0;max-width:none;padding:0}h2{break-after:avoid}tr{break-inside:avoid}thead{display:table-header-group}}
";

/// The document as one HTML page with inline styles and nothing to fetch.
pub fn html(title: &str, blocks: &[Block]) -> String {
    let title = html_escape(title);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    for block in blocks {
        match block {
            Block::Heading(h) => {
                let _ = writeln!(out, "<h2>{}</h2>", html_escape(h));
            }
            Block::Para(cells) => {
                let text: String = cells.iter().map(html_cell).collect();
                let _ = writeln!(out, "<p>{text}</p>");
            }
            Block::Fields(fields) => {
                out.push_str("<table class=\"fields\">\n");
                for (label, value) in fields {
                    let _ = writeln!(
                        out,
                        "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
                        html_escape(label),
                        html_cell(value)
                    );
                }
                out.push_str("</table>\n");
            }
            Block::Table { head, rows, empty } => {
                if rows.is_empty() {
                    let _ = writeln!(out, "<p>{}</p>", html_escape(empty));
                    continue;
                }
                out.push_str("<table>\n<thead><tr>");
                for h in head {
                    let _ = write!(out, "<th scope=\"col\">{}</th>", html_escape(h));
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for row in rows {
                    out.push_str("<tr>");
                    for c in row {
                        let class = if matches!(c, Cell::Num(_)) {
                            " class=\"num\""
                        } else {
                            ""
                        };
                        let _ = write!(out, "<td{class}>{}</td>", html_cell(c));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody>\n</table>\n");
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_is_escaped_in_both_formats() {
        let blocks = vec![Block::Table {
            head: vec!["Actor"],
            rows: vec![vec![Cell::text("<script>x</script> | *bold*\nnext")]],
            empty: String::new(),
        }];
        let html = html("t", &blocks);
        assert!(
            html.contains("&lt;script&gt;x&lt;/script&gt; | *bold*\nnext"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        let md = markdown("t", &blocks);
        assert!(
            md.contains(r"| \<script\>x\</script\> \| \*bold\* next |"),
            "{md}"
        );
    }

    #[test]
    fn empty_tables_say_so_and_numbers_align_right() {
        let blocks = vec![
            Block::Table {
                head: vec!["A"],
                rows: vec![],
                empty: "No denials.".into(),
            },
            Block::Table {
                head: vec!["A", "N"],
                rows: vec![vec![Cell::text("x"), Cell::num(3)]],
                empty: String::new(),
            },
        ];
        assert!(markdown("t", &blocks).contains("\nNo denials.\n"));
        let html = html("t", &blocks);
        assert!(html.contains("<p>No denials.</p>"));
        assert!(html.contains("<td class=\"num\">3</td>"));
        assert!(!html.contains("http"), "no external assets");
    }
}
