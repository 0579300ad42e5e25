//! The bounded stderr ring of one provider, with a line budget: a provider
//! that floods stderr costs a bounded amount of work (lines past the budget
//! are counted with a byte scan and dropped, never parsed or stored).

use std::collections::VecDeque;

use serde::Serialize;
use tokio::time::Instant;

/// Longest stderr line kept; the rest of a longer line is cut off.
pub const MAX_LINE_BYTES: usize = 8 * 1024;

/// How much of a provider's stderr is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Lines kept (the ring's size).
    pub capacity: usize,
    /// Lines per second kept (also the burst); the rest are dropped and counted.
    pub lines_per_s: u32,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            capacity: hangar_core::config::DEFAULT_MAX_LOG_LINES,
            lines_per_s: hangar_core::config::DEFAULT_LOG_LINES_PER_S,
        }
    }
}

/// A token bucket of lines.
#[derive(Debug)]
struct Budget {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Budget {
    fn new(lines_per_s: u32) -> Self {
        let rate = f64::from(lines_per_s.max(1));
        Self {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let secs = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + secs * self.rate).min(self.rate);
    }

    fn take(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

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
    budget: Budget,
    /// Lines dropped over the budget since start.
    dropped_total: u64,
    /// Dropped lines not yet reported by a note in the ring.
    dropped_unreported: u64,
    /// Live followers (`/api/ws/providers/{id}/logs`); bounded, a slow one lags.
    live: tokio::sync::broadcast::Sender<LogLine>,
}

/// Lines a live log follower may fall behind by before it is told it lagged.
pub const LIVE_LOG_CAPACITY: usize = 256;

impl LogRing {
    /// An empty ring.
    pub fn new(provider: &str, limits: LogLimits) -> Self {
        Self {
            provider: provider.to_owned(),
            capacity: limits.capacity.max(1),
            lines: VecDeque::new(),
            partial: Vec::new(),
            truncating: false,
            budget: Budget::new(limits.lines_per_s),
            dropped_total: 0,
            dropped_unreported: 0,
            live: tokio::sync::broadcast::channel(LIVE_LOG_CAPACITY).0,
        }
    }

    /// Feeds a chunk of raw stderr bytes. Returns how many lines it dropped
    /// over the budget (the reader backs off when it drops).
    pub fn push_chunk(&mut self, chunk: &[u8]) -> u64 {
        self.budget.refill();
        let mut rest = chunk;
        let mut dropped = 0;
        while let Some(pos) = memchr::memchr(b'\n', rest) {
            if !self.budget.take() {
                // Over budget: count the rest of the chunk's lines, keep none.
                let lines = 1 + memchr::memchr_iter(b'\n', &rest[pos + 1..]).count() as u64;
                dropped += lines;
                self.partial.clear();
                self.truncating = false;
                rest = memchr::memrchr(b'\n', rest).map_or(rest, |last| &rest[last + 1..]);
                break;
            }
            if self.dropped_unreported > 0 {
                self.report_dropped();
            }
            self.extend_partial(&rest[..pos]);
            self.finish_line();
            rest = &rest[pos + 1..];
        }
        self.extend_partial(rest);
        self.dropped_total += dropped;
        self.dropped_unreported += dropped;
        dropped
    }

    fn report_dropped(&mut self) {
        let n = std::mem::take(&mut self.dropped_unreported);
        self.push_line(format!(
            "[hangar] {n} stderr lines dropped: over server.log_lines_per_s"
        ));
    }

    /// Lines dropped over the budget since the provider's ring was made.
    pub fn dropped(&self) -> u64 {
        self.dropped_total
    }

    /// Flushes a last line without a newline (at process exit), and says
    /// how many lines were dropped since the last such note.
    pub fn flush(&mut self) {
        if !self.partial.is_empty() || self.truncating {
            self.finish_line();
        }
        if self.dropped_unreported > 0 {
            self.report_dropped();
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
        let line = LogLine {
            timestamp: crate::now_rfc3339(),
            line,
            provider_id: self.provider.clone(),
            stream: "stderr",
        };
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(line.clone());
        }
        self.lines.push_back(line);
    }

    /// The last `n` lines and every line after them, live.
    pub fn follow(&self, n: usize) -> (Vec<LogLine>, tokio::sync::broadcast::Receiver<LogLine>) {
        (self.tail(n), self.live.subscribe())
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

    fn limits(capacity: usize) -> LogLimits {
        LogLimits {
            capacity,
            lines_per_s: 1000,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_dropped_and_counted_past_the_budget() {
        let mut r = LogRing::new(
            "p",
            LogLimits {
                capacity: 100,
                lines_per_s: 10,
            },
        );
        let flood = b"spam\n".repeat(1000);
        assert_eq!(r.push_chunk(&flood), 990);
        assert_eq!(r.dropped(), 990);
        assert_eq!(r.tail(100).len(), 10);
        // A second later the budget is back; the drop is reported first.
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        assert_eq!(r.push_chunk(b"hello\n"), 0);
        let t: Vec<_> = r.tail(2).into_iter().map(|l| l.line).collect();
        assert_eq!(
            t,
            [
                "[hangar] 990 stderr lines dropped: over server.log_lines_per_s",
                "hello"
            ]
        );
        // The line still open when the budget ran out goes on in the next chunk.
        let mut r = LogRing::new(
            "p",
            LogLimits {
                capacity: 10,
                lines_per_s: 1,
            },
        );
        assert_eq!(r.push_chunk(b"a\nb\nc"), 1);
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        r.push_chunk(b"d\n");
        let t: Vec<_> = r.tail(10).into_iter().map(|l| l.line).collect();
        assert_eq!(t[0], "a");
        assert_eq!(t.last().map(String::as_str), Some("cd"));
    }

    #[test]
    fn splits_chunks_across_boundaries() {
        let mut r = LogRing::new("p", limits(10));
        r.push_chunk(b"hel");
        r.push_chunk(b"lo\nwor");
        r.push_chunk(b"ld\r\n\n");
        let t: Vec<_> = r.tail(10).into_iter().map(|l| l.line).collect();
        assert_eq!(t, vec!["hello", "world", ""]);
    }

    #[test]
    fn non_utf8_and_long_lines() {
        let mut r = LogRing::new("p", limits(10));
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
        let mut r = LogRing::new("p", limits(3));
        for i in 0..10 {
            r.push_chunk(format!("{i}\n").as_bytes());
        }
        let t: Vec<_> = r.tail(100).into_iter().map(|l| l.line).collect();
        assert_eq!(t, vec!["7", "8", "9"]);
        assert_eq!(r.tail(1)[0].line, "9");
    }
}
