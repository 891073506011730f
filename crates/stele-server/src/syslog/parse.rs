//! RFC 5424 §6 message syntax, and RFC 6587 §3.4 TCP framing (octet counting and
//! non-transparent LF framing).

use thiserror::Error;

/// An RFC 5424 message split into its parts; strings borrow from the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// PRI: facility × 8 + severity (0..=191).
    pub pri: u8,
    /// TIMESTAMP, or `None` for the NILVALUE `-`.
    pub timestamp: Option<&'a str>,
    /// HOSTNAME, or `None` for `-`.
    pub hostname: Option<&'a str>,
    /// APP-NAME, or `None` for `-`.
    pub app_name: Option<&'a str>,
    /// PROCID, or `None` for `-`.
    pub procid: Option<&'a str>,
    /// MSGID, or `None` for `-`.
    pub msgid: Option<&'a str>,
    /// SD-ELEMENTs: SD-ID and its params, with `\"`, `\\` and `\]` unescaped.
    pub structured_data: Vec<(&'a str, Vec<(&'a str, String)>)>,
    /// MSG, without a leading UTF-8 BOM; empty when absent.
    pub msg: &'a [u8],
}

impl Message<'_> {
    /// Facility (PRI / 8).
    pub fn facility(&self) -> u8 {
        self.pri / 8
    }
    /// Severity (PRI % 8): 0 emergency … 7 debug.
    pub fn severity(&self) -> u8 {
        self.pri % 8
    }
}

/// Why a message is not RFC 5424.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not an RFC 5424 message: {what} at byte {at}")]
pub struct ParseError {
    /// What was expected or wrong.
    pub what: &'static str,
    /// Byte offset in the message.
    pub at: usize,
}

struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: &'static str) -> ParseError {
        ParseError { what, at: self.at }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), ParseError> {
        if self.peek() == Some(b) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// A header field: 1..=max printable US-ASCII characters up to a space; `-` is nil.
    fn field(&mut self, max: usize, what: &'static str) -> Result<Option<&'a str>, ParseError> {
        let start = self.at;
        while let Some(b) = self.peek() {
            if b == b' ' {
                break;
            }
            if !(33..=126).contains(&b) {
                return Err(self.err(what));
            }
            self.at += 1;
        }
        let len = self.at - start;
        if len == 0 || len > max {
            return Err(ParseError { what, at: start });
        }
        let text = self
            .s
            .get(start..self.at)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or(ParseError { what, at: start })?;
        self.expect(b' ', what)?;
        Ok((text != "-").then_some(text))
    }
}

/// Parses one RFC 5424 message (framing already removed).
///
/// # Errors
///
/// [`ParseError`] naming the first part that does not follow the RFC 5424 ABNF.
pub fn parse(s: &[u8]) -> Result<Message<'_>, ParseError> {
    let mut c = Cursor { s, at: 0 };
    c.expect(b'<', "PRI must start with '<'")?;
    let mut pri: u32 = 0;
    let digits_at = c.at;
    while let Some(d) = c.peek().filter(u8::is_ascii_digit) {
        pri = pri * 10 + u32::from(d - b'0');
        c.at += 1;
        if c.at - digits_at > 3 {
            return Err(c.err("PRI has more than 3 digits"));
        }
    }
    if c.at == digits_at || pri > 191 {
        return Err(c.err("PRI must be 0..191"));
    }
    c.expect(b'>', "PRI must end with '>'")?;
    c.expect(b'1', "VERSION must be 1")?;
    c.expect(b' ', "a space must follow VERSION")?;
    let timestamp = c.field(64, "TIMESTAMP")?;
    let hostname = c.field(255, "HOSTNAME (1..255 printable ASCII)")?;
    let app_name = c.field(48, "APP-NAME (1..48 printable ASCII)")?;
    let procid = c.field(128, "PROCID (1..128 printable ASCII)")?;
    let msgid = c.field(32, "MSGID (1..32 printable ASCII)")?;
    let structured_data = structured_data(&mut c)?;
    let msg = match c.peek() {
        None => &[][..],
        Some(b' ') => s.get(c.at + 1..).unwrap_or_default(),
        Some(_) => return Err(c.err("a space must separate STRUCTURED-DATA and MSG")),
    };
    let msg = msg.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(msg);
    Ok(Message {
        pri: u8::try_from(pri).unwrap_or(u8::MAX),
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        structured_data,
        msg,
    })
}

type Elements<'a> = Vec<(&'a str, Vec<(&'a str, String)>)>;

fn structured_data<'a>(c: &mut Cursor<'a>) -> Result<Elements<'a>, ParseError> {
    if c.peek() == Some(b'-') {
        c.at += 1;
        return Ok(Vec::new());
    }
    let mut elements = Vec::new();
    while c.peek() == Some(b'[') {
        c.at += 1;
        let id = sd_name(c, "SD-ID")?;
        let mut params = Vec::new();
        while c.peek() == Some(b' ') {
            c.at += 1;
            let name = sd_name(c, "PARAM-NAME")?;
            c.expect(b'=', "'=' must follow PARAM-NAME")?;
            c.expect(b'"', "PARAM-VALUE must be quoted")?;
            let mut value = Vec::new();
            loop {
                match c.peek() {
                    None => return Err(c.err("PARAM-VALUE is not closed")),
                    Some(b'"') => {
                        c.at += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let next = c.s.get(c.at + 1).copied();
                        // Only `"`, `\` and `]` are escapes; any other backslash is kept.
                        if let Some(e @ (b'"' | b'\\' | b']')) = next {
                            value.push(e);
                            c.at += 2;
                        } else {
                            value.push(b'\\');
                            c.at += 1;
                        }
                    }
                    Some(b) => {
                        value.push(b);
                        c.at += 1;
                    }
                }
            }
            let value = String::from_utf8(value).map_err(|_| c.err("PARAM-VALUE must be UTF-8"))?;
            params.push((name, value));
        }
        c.expect(b']', "SD-ELEMENT must end with ']'")?;
        elements.push((id, params));
    }
    if elements.is_empty() {
        return Err(c.err("STRUCTURED-DATA must be '-' or SD-ELEMENTs"));
    }
    Ok(elements)
}

/// SD-NAME: 1..32 printable US-ASCII except `=`, space, `]` and `"`.
fn sd_name<'a>(c: &mut Cursor<'a>, what: &'static str) -> Result<&'a str, ParseError> {
    let start = c.at;
    while let Some(b) = c.peek() {
        if !(33..=126).contains(&b) || matches!(b, b'=' | b']' | b'"') {
            break;
        }
        c.at += 1;
    }
    if c.at == start || c.at - start > 32 {
        return Err(ParseError { what, at: start });
    }
    c.s.get(start..c.at)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or(ParseError { what, at: start })
}

/// One step of RFC 6587 framing over a TCP byte stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A message occupies `start..end` of the buffer; the next frame starts at `next`.
    Message {
        /// Start of the message.
        start: usize,
        /// End of the message (exclusive).
        end: usize,
        /// Where the next frame starts.
        next: usize,
    },
    /// More bytes are needed.
    Incomplete,
    /// The stream cannot be framed from here on; the connection must be closed.
    Broken(String),
}

/// Finds the next frame in `buf`: octet counting (`MSG-LEN SP MSG`) when it starts with a
/// digit 1–9, else a message ending at LF (a CR before it is dropped). NUL, CR and LF
/// between frames are skipped. A message may be at most `max` bytes.
pub fn next_frame(buf: &[u8], max: usize) -> Frame {
    let skip = buf
        .iter()
        .take_while(|b| matches!(b, b'\n' | b'\r' | b'\0'))
        .count();
    let rest = buf.get(skip..).unwrap_or_default();
    match rest.first() {
        None => Frame::Incomplete,
        Some(b'1'..=b'9') => {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits > 10 {
                return Frame::Broken(format!(
                    "octet count of more than 10 digits; the limit is {max} bytes"
                ));
            }
            let Some(&after) = rest.get(digits) else {
                return Frame::Incomplete;
            };
            if after != b' ' {
                return Frame::Broken(
                    "octet count not followed by a space (RFC 6587 §3.4.1)".to_owned(),
                );
            }
            let len: usize = std::str::from_utf8(rest.get(..digits).unwrap_or_default())
                .ok()
                .and_then(|d| d.parse().ok())
                .unwrap_or(usize::MAX);
            if len > max {
                return Frame::Broken(format!(
                    "a message of {len} bytes announced; the limit is {max} bytes"
                ));
            }
            let start = skip + digits + 1;
            let end = start + len;
            if buf.len() < end {
                Frame::Incomplete
            } else {
                Frame::Message {
                    start,
                    end,
                    next: end,
                }
            }
        }
        Some(_) => match rest.iter().position(|&b| b == b'\n') {
            Some(lf) => {
                let end = if lf > 0 && rest.get(lf - 1) == Some(&b'\r') {
                    lf - 1
                } else {
                    lf
                };
                if end > max {
                    return Frame::Broken(format!(
                        "a message of {end} bytes; the limit is {max} bytes"
                    ));
                }
                Frame::Message {
                    start: skip,
                    end: skip + end,
                    next: skip + lf + 1,
                }
            }
            None if rest.len() > max => Frame::Broken(format!(
                "no line feed within {max} bytes (the message limit)"
            )),
            None => Frame::Incomplete,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn rfc_5424_examples_parse() {
        // RFC 5424 §6.5, examples 1, 3 and 4 (example 1 with its BOM).
        let m = parse(b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8").unwrap();
        assert_eq!((m.facility(), m.severity()), (4, 2));
        assert_eq!(m.timestamp, Some("2003-10-11T22:14:15.003Z"));
        assert_eq!(m.app_name, Some("su"));
        assert_eq!(m.procid, None);
        assert_eq!(m.msgid, Some("ID47"));
        assert_eq!(m.msg, b"'su root' failed for lonvick on /dev/pts/8");
        let m = parse(br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry..."#).unwrap();
        assert_eq!(m.structured_data[0].0, "exampleSDID@32473");
        assert_eq!(
            m.structured_data[0].1[1],
            ("eventSource", "Application".to_owned())
        );
        let m = parse(br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]"#).unwrap();
        assert_eq!(m.structured_data.len(), 2);
        assert_eq!(m.msg, b"");
        let m = parse(br#"<13>1 - - - - - [a@1 v="q\"b\\s\]x\n"] m"#).unwrap();
        assert_eq!(m.structured_data[0].1[0].1, "q\"b\\s]x\\n");
    }

    #[test]
    fn malformed_messages_name_the_part() {
        for (msg, what) in [
            (
                &b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed"[..],
                "VERSION must be 1",
            ),
            (b"34>1 - - - - - -", "PRI must start with '<'"),
            (b"<192>1 - - - - - -", "PRI must be 0..191"),
            (b"<13>1 - - - - -", "MSGID"),
            (b"<13>1 - - - - - [x", "SD-ELEMENT must end with ']'"),
            (b"<13>1 - - - - - [x a=\"b]", "PARAM-VALUE is not closed"),
            (
                b"<13>1 - - - - - -x",
                "a space must separate STRUCTURED-DATA and MSG",
            ),
        ] {
            let err = parse(msg).unwrap_err();
            assert!(
                err.what.contains(what),
                "{err} for {:?}",
                String::from_utf8_lossy(msg)
            );
        }
    }

    #[test]
    fn framing_by_octet_count_and_by_line_feed() {
        let buf = b"11 <13>1 - - -\n<13>1 x\r\n\r\n5 ab";
        let Frame::Message { start, end, next } = next_frame(buf, 100) else {
            panic!()
        };
        assert_eq!(&buf[start..end], b"<13>1 - - -");
        let rest = &buf[next..];
        let Frame::Message { start, end, next } = next_frame(rest, 100) else {
            panic!()
        };
        assert_eq!(&rest[start..end], b"<13>1 x");
        assert_eq!(next_frame(&rest[next..], 100), Frame::Incomplete);
        assert!(
            matches!(next_frame(b"99999 x", 100), Frame::Broken(m) if m.contains("99999 bytes"))
        );
        assert!(matches!(next_frame(b"12x", 100), Frame::Broken(_)));
        assert!(matches!(next_frame(&[b'<'; 200], 100), Frame::Broken(_)));
        assert_eq!(next_frame(b"\n\r\0", 100), Frame::Incomplete);
    }
}
