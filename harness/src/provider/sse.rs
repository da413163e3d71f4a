//! An incremental Server-Sent Events parser (WHATWG "event stream" rules).
//!
//! Bytes are pushed as they are read from the socket; complete events come out.
//! Handles events split across reads and several events per read, `\n`, `\r\n`
//! and `\r` line endings, comment lines (`:`), `event:`/`id:`/`retry:` fields,
//! multi-line `data:` (joined with `\n`), and a final event without its blank
//! line when the stream ends ([`SseParser::finish`]). It knows nothing of JSON
//! or OpenAI; `openai.rs` interprets the data.

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, when one was given.
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    /// Where the next scan for a line ending starts.
    pos: usize,
    /// A `\r` ended the last line; a `\n` right after it is part of that ending.
    skip_lf: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; calls `out` for every event they complete.
    pub fn push(&mut self, bytes: &[u8], mut out: impl FnMut(SseEvent)) {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        let mut i = self.pos;
        while i < self.buf.len() {
            let b = self.buf[i];
            if self.skip_lf {
                self.skip_lf = false;
                if b == b'\n' && i == start {
                    start = i + 1;
                    i += 1;
                    continue;
                }
            }
            if b == b'\n' || b == b'\r' {
                let line = self.buf_line(start, i);
                self.line(&line, &mut out);
                self.skip_lf = b == b'\r';
                start = i + 1;
            }
            i += 1;
        }
        self.buf.drain(..start);
        self.pos = self.buf.len();
    }

    fn buf_line(&self, start: usize, end: usize) -> String {
        String::from_utf8_lossy(&self.buf[start..end]).into_owned()
    }

    /// Ends the stream: a pending event that lacked its final blank line is
    /// still delivered (servers that close right after the last `data:`).
    pub fn finish(&mut self, mut out: impl FnMut(SseEvent)) {
        if !self.buf.is_empty() {
            let line = self.buf_line(0, self.buf.len());
            self.buf.clear();
            self.pos = 0;
            self.line(&line, &mut out);
        }
        self.dispatch(&mut out);
    }

    fn line(&mut self, line: &str, out: &mut impl FnMut(SseEvent)) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return; // comment / keep-alive
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_string()),
            _ => {} // id, retry and unknown fields are ignored
        }
    }

    fn dispatch(&mut self, out: &mut impl FnMut(SseEvent)) {
        if self.has_data {
            out(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.event = None;
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut v = vec![];
        for c in chunks {
            p.push(c, |e| v.push(e));
        }
        p.finish(|e| v.push(e));
        v
    }

    fn ev(data: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: data.into(),
        }
    }

    #[test]
    fn table() {
        type Case<'a> = (&'a str, Vec<&'a [u8]>, Vec<SseEvent>);
        let cases: Vec<Case> = vec![
            ("one event", vec![b"data: a\n\n"], vec![ev("a")]),
            (
                "two events in one read",
                vec![b"data: a\n\ndata: b\n\n"],
                vec![ev("a"), ev("b")],
            ),
            (
                "split across reads",
                vec![b"da", b"ta: {\"x\"", b":1}\n", b"\n"],
                vec![ev("{\"x\":1}")],
            ),
            (
                "crlf endings",
                vec![b"data: a\r\n\r\ndata: b\r\n\r\n"],
                vec![ev("a"), ev("b")],
            ),
            (
                "crlf split between cr and lf",
                vec![b"data: a\r", b"\n\r", b"\n"],
                vec![ev("a")],
            ),
            (
                "bare cr endings",
                vec![b"data: a\r\rdata: b\r\r"],
                vec![ev("a"), ev("b")],
            ),
            (
                "comments ignored",
                vec![b": ping\n\ndata: a\n: mid\n\n"],
                vec![ev("a")],
            ),
            (
                "event field",
                vec![b"event: error\ndata: {}\n\n"],
                vec![SseEvent {
                    event: Some("error".into()),
                    data: "{}".into(),
                }],
            ),
            (
                "multi-line data",
                vec![b"data: line1\ndata: line2\n\n"],
                vec![ev("line1\nline2")],
            ),
            ("no space after colon", vec![b"data:x\n\n"], vec![ev("x")]),
            (
                "only first space stripped",
                vec![b"data:  x\n\n"],
                vec![ev(" x")],
            ),
            ("empty data line", vec![b"data\n\n"], vec![ev("")]),
            (
                "event without data is not dispatched",
                vec![b"event: ping\n\n"],
                vec![],
            ),
            (
                "missing final blank line",
                vec![b"data: a\n\ndata: [DONE]\n"],
                vec![ev("a"), ev("[DONE]")],
            ),
            (
                "missing final newline",
                vec![b"data: last"],
                vec![ev("last")],
            ),
            (
                "id and retry ignored",
                vec![b"id: 3\nretry: 10\ndata: a\n\n"],
                vec![ev("a")],
            ),
            (
                "utf-8 split inside a character",
                vec![b"data: caf\xc3", b"\xa9 \xf0\x9f\x98", b"\x80\n\n"],
                vec![ev("café 😀")],
            ),
            (
                "error object then done",
                vec![b"data: {\"error\":{\"message\":\"boom\"}}\n\ndata: [DONE]\n\n"],
                vec![ev("{\"error\":{\"message\":\"boom\"}}"), ev("[DONE]")],
            ),
        ];
        for (name, chunks, want) in cases {
            assert_eq!(parse_chunks(&chunks), want, "case: {name}");
        }
    }

    #[test]
    fn real_llama_cpp_capture_parses() {
        let raw = include_bytes!("../../tests/fixtures/llamacpp-chat-stream.sse");
        let events = parse_chunks(&[raw]);
        assert!(events.len() > 3);
        assert_eq!(events.last().unwrap().data, "[DONE]");
        for e in &events[..events.len() - 1] {
            serde_json::from_str::<serde_json::Value>(&e.data).expect("each event is JSON");
        }
    }

    proptest! {
        /// Any split of a valid stream's bytes gives the same events.
        #[test]
        fn any_split_gives_same_events(cuts in proptest::collection::vec(0usize..400, 0..12), crlf in any::<bool>()) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut s = String::new();
            s.push_str(&format!(": keep-alive{nl}{nl}"));
            for i in 0..6 {
                s.push_str(&format!("data: {{\"i\":{i},\"t\":\"tok é{i}\"}}{nl}{nl}"));
            }
            s.push_str(&format!("event: usage{nl}data: {{\"u\":1}}{nl}data: more{nl}{nl}data: [DONE]{nl}{nl}"));
            let bytes = s.as_bytes();
            let whole = parse_chunks(&[bytes]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort();
            let mut pieces: Vec<&[u8]> = vec![];
            let mut last = 0;
            for c in cuts {
                pieces.push(&bytes[last..c]);
                last = c;
            }
            pieces.push(&bytes[last..]);
            prop_assert_eq!(parse_chunks(&pieces), whole.clone());
            prop_assert_eq!(whole.len(), 8);
        }
    }
}
