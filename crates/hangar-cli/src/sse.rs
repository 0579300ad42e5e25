//! Incremental `text/event-stream` parser (the subset of the WHATWG rules MCP needs):
//! feed it bytes as they arrive, get complete events back.

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, empty when the event had none (i.e. `message`).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
}

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous byte was `\r`: a following `\n` belongs to the same line break.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl SseParser {
    /// Feed the next bytes; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &byte in bytes {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut out);
                }
                b'\n' => self.end_line(&mut out),
                _ => self.line.push(byte),
            }
        }
        out
    }

    /// The stream ended: return the event still being built, if it has data.
    /// (Lenient: the spec drops an unterminated event, but a response is worth keeping.)
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut out);
        }
        self.end_line(&mut out);
        out.pop()
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let raw = std::mem::take(&mut self.line);
        let line = String::from_utf8_lossy(&raw);
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: std::mem::take(&mut self.event),
                    data: std::mem::take(&mut self.data),
                    id: self.id.clone(),
                });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return; // comment / keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = value.to_owned(),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut events: Vec<SseEvent> = input.iter().flat_map(|chunk| parser.push(chunk)).collect();
        events.extend(parser.finish());
        events
    }

    #[test]
    fn parses_events_split_across_chunks() {
        let events = all(&[
            b"id: 0\ndata:\n\n: keep-alive\n\nevent: message\nda",
            b"ta: {\"a\":\n",
            b"data: 1}\n\n",
        ]);
        // The priming event (empty data) is still an event; callers skip what isn't JSON.
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data, "");
        assert_eq!(events[1].event, "message");
        assert_eq!(events[1].data, "{\"a\":\n1}");
        assert_eq!(events[1].id.as_deref(), Some("0"));
    }

    #[test]
    fn handles_crlf_and_cr_line_breaks_even_when_split() {
        let events = all(&[b"data: one\r", b"\n\r\ndata: two\r\rdata:three\n\n"]);
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, vec!["one", "two", "three"]);
    }

    #[test]
    fn multibyte_characters_split_between_chunks() {
        let text = "data: {\"t\":\"héllo\"}\n\n".as_bytes();
        let (a, b) = text.split_at(14); // inside the two-byte 'é'
        let events = all(&[a, b]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "{\"t\":\"héllo\"}");
    }

    #[test]
    fn keeps_an_unterminated_last_event() {
        let events = all(&[b"event: message\ndata: {\"id\":1}"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "{\"id\":1}");
        assert!(all(&[b": only a comment\n"]).is_empty());
    }
}
