//! The bounded stderr ring of one provider.

use std::collections::VecDeque;

use serde::Serialize;

/// Longest stderr line kept; the rest of a longer line is cut off.
pub const MAX_LINE_BYTES: usize = 8 * 1024;

/// One stderr line.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LogLine {
    /// RFC 3339 time the line was read.
    pub timestamp: String,
    /// The line, lossily decoded as UTF-8, without its newline.
    pub line: String,
    /// Provider id.
    pub provider_id: String,
    /// Always `stderr`: stdout carries MCP only.
    pub stream: &'static str,
}

/// Keeps the last `capacity` lines; splits chunks into lines itself, so
/// non-UTF-8 output and overlong lines are handled instead of panicking.
#[derive(Debug)]
pub struct LogRing {
    provider: String,
    capacity: usize,
    lines: VecDeque<LogLine>,
    partial: Vec<u8>,
    truncating: bool,
}

impl LogRing {
    /// An empty ring.
    pub fn new(provider: &str, capacity: usize) -> Self {
        Self {
            provider: provider.to_owned(),
            capacity: capacity.max(1),
            lines: VecDeque::new(),
            partial: Vec::new(),
            truncating: false,
        }
    }

    /// Feeds a chunk of raw stderr bytes.
    pub fn push_chunk(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            self.extend_partial(&rest[..pos]);
            self.finish_line();
            rest = &rest[pos + 1..];
        }
        self.extend_partial(rest);
    }

    /// Flushes a last line without a newline (at process exit).
    pub fn flush(&mut self) {
        if !self.partial.is_empty() || self.truncating {
            self.finish_line();
        }
    }

    /// Appends a line Hangar itself writes (e.g. "process exited").
    pub fn push_note(&mut self, note: &str) {
        self.flush();
        self.push_line(note.to_owned());
    }

    fn extend_partial(&mut self, bytes: &[u8]) {
        if self.truncating {
            return;
        }
        let room = MAX_LINE_BYTES.saturating_sub(self.partial.len());
        if bytes.len() > room {
            self.partial.extend_from_slice(&bytes[..room]);
            self.truncating = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn finish_line(&mut self) {
        let mut raw = std::mem::take(&mut self.partial);
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
        let mut line = String::from_utf8_lossy(&raw).into_owned();
        if self.truncating {
            line.push_str(" [truncated]");
        }
        self.truncating = false;
        self.push_line(line);
    }

    fn push_line(&mut self, line: String) {
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(LogLine {
            timestamp: crate::now_rfc3339(),
            line,
            provider_id: self.provider.clone(),
            stream: "stderr",
        });
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<LogLine> {
        let skip = self.lines.len().saturating_sub(n);
        self.lines.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_chunks_across_boundaries() {
        let mut r = LogRing::new("p", 10);
        r.push_chunk(b"hel");
        r.push_chunk(b"lo\nwor");
        r.push_chunk(b"ld\r\n\n");
        let t: Vec<_> = r.tail(10).into_iter().map(|l| l.line).collect();
        assert_eq!(t, vec!["hello", "world", ""]);
    }

    #[test]
    fn non_utf8_and_long_lines() {
        let mut r = LogRing::new("p", 10);
        r.push_chunk(&[0xff, 0xfe, b'a', b'\n']);
        let long = vec![b'x'; MAX_LINE_BYTES * 2 + 5];
        r.push_chunk(&long);
        r.push_chunk(b"\nafter\n");
        let t = r.tail(10);
        assert_eq!(t[0].line, "\u{fffd}\u{fffd}a");
        assert!(t[1].line.ends_with("[truncated]"));
        assert_eq!(t[1].line.len(), MAX_LINE_BYTES + " [truncated]".len());
        assert_eq!(t[2].line, "after");
    }

    #[test]
    fn bounded() {
        let mut r = LogRing::new("p", 3);
        for i in 0..10 {
            r.push_chunk(format!("{i}\n").as_bytes());
        }
        let t: Vec<_> = r.tail(100).into_iter().map(|l| l.line).collect();
        assert_eq!(t, vec!["7", "8", "9"]);
        assert_eq!(r.tail(1)[0].line, "9");
    }
}
