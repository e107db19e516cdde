//! Newline-delimited JSON framing: one JSON text per line.
//!
//! [`LineReader`] never holds more than the size limit of one frame: a longer line is reported
//! as [`Line::TooLarge`] as soon as it crosses the limit, and its rest is discarded up to the
//! next newline, after which framing goes on normally.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One unit read from a line stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A frame: the bytes of one line, newline excluded (a trailing `\r` is kept; JSON treats
    /// it as whitespace).
    Frame(Vec<u8>),
    /// A line longer than the limit; its bytes were discarded.
    TooLarge,
}

/// Reads [`Line`]s of at most `max` bytes from a buffered reader.
///
/// [`LineReader::next`] is cancel-safe: a partial line stays buffered in the reader when the
/// future is dropped (for example by a timeout), and the next call goes on from there.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    max: usize,
    discarding: bool,
    eof: bool,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Frames `inner`, allowing lines of up to `max` bytes.
    pub fn new(inner: R, max: usize) -> Self {
        LineReader { inner, buf: Vec::new(), max, discarding: false, eof: false }
    }

    /// The next line; blank lines are skipped. At end of input a final line without a newline
    /// is returned as a frame (it may be a half-sent message), then `None`.
    pub async fn next(&mut self) -> io::Result<Option<Line>> {
        loop {
            if self.eof {
                return Ok(None);
            }
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                self.eof = true;
                let rest = std::mem::take(&mut self.buf);
                if self.discarding || rest.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                return Ok(Some(Line::Frame(rest)));
            }
            let newline = available.iter().position(|&byte| byte == b'\n');
            let taken = newline.unwrap_or(available.len());
            let consumed = newline.map_or(taken, |at| at + 1);
            if self.discarding {
                self.inner.consume(consumed);
                self.discarding = newline.is_none();
                continue;
            }
            if self.buf.len() + taken > self.max {
                self.inner.consume(consumed);
                self.buf = Vec::new();
                self.discarding = newline.is_none();
                return Ok(Some(Line::TooLarge));
            }
            self.buf.extend_from_slice(&available[..taken]);
            self.inner.consume(consumed);
            if newline.is_some() {
                let frame = std::mem::take(&mut self.buf);
                if frame.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(Line::Frame(frame)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn lines(input: &[u8], max: usize, capacity: usize) -> Vec<Line> {
        let mut reader = LineReader::new(BufReader::with_capacity(capacity, input), max);
        let mut out = Vec::new();
        while let Some(line) = reader.next().await.unwrap() {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn frames_skip_blank_lines_and_keep_a_final_partial_line() {
        for capacity in [1, 3, 64] {
            let out = lines(b"ab\n\n  \ncd\r\nef", 10, capacity).await;
            assert_eq!(
                out,
                vec![Line::Frame(b"ab".to_vec()), Line::Frame(b"cd\r".to_vec()), Line::Frame(b"ef".to_vec())]
            );
        }
    }

    #[tokio::test]
    async fn oversized_lines_are_reported_once_and_skipped() {
        for capacity in [1, 4, 64] {
            let out = lines(b"12345\n123456789\nok\n1234567890123", 5, capacity).await;
            assert_eq!(
                out,
                vec![Line::Frame(b"12345".to_vec()), Line::TooLarge, Line::Frame(b"ok".to_vec()), Line::TooLarge]
            );
        }
    }
}
