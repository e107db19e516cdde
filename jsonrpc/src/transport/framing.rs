//! Newline-delimited JSON framing: one JSON text per line.
//!
//! [`LineReader`] never holds more than the size limit of one frame: a longer line is reported
//! as [`Line::TooLarge`] as soon as it crosses the limit, and its rest is discarded up to the
//! next newline, after which framing goes on normally. With a message timeout
//! ([`LineReader::with_message_timeout`]), a line that is not whole within that time of its
//! first byte fails the read with [`io::ErrorKind::TimedOut`].

use std::{io, time::Duration};

use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt},
    time::{timeout_at, Instant},
};

/// One unit read from a line stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A frame: the bytes of one line, newline excluded (a trailing `\r` is kept; JSON treats
    /// it as whitespace). Borrowed until the next read.
    Frame(&'a [u8]),
    /// A line longer than the limit; its bytes were discarded.
    TooLarge,
}

/// Where the frame being returned lies.
enum Found {
    /// Whole in the underlying reader's buffer, the first `len` bytes (not yet consumed).
    InReader(usize),
    /// Assembled in `LineReader::buf` from several reads (or a final line without newline).
    Assembled,
    /// A line over the limit.
    TooLarge,
    /// End of input.
    End,
}

/// Reads [`Line`]s of at most `max` bytes from a buffered reader.
///
/// A line that arrived whole is lent straight out of the reader's buffer (no copy); one that
/// arrived in pieces is assembled in a buffer of its own, released once the frame is read.
///
/// [`LineReader::next`] is cancel-safe: a partial line stays buffered when the future is
/// dropped (for example by a timeout), and the next call goes on from there.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    max: usize,
    discarding: bool,
    eof: bool,
    /// Bytes of `inner`'s buffer lent out as the last frame, consumed on the next read.
    lent: usize,
    /// Whether `buf` holds the last frame returned (cleared on the next read).
    assembled: bool,
    /// How long a line may take from its first byte to its newline.
    message_timeout: Option<Duration>,
    /// When the first byte of the line being read arrived (`None` between lines).
    started: Option<Instant>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Frames `inner`, allowing lines of up to `max` bytes.
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            max,
            discarding: false,
            eof: false,
            lent: 0,
            assembled: false,
            message_timeout: None,
            started: None,
        }
    }

    /// Fails a read with [`io::ErrorKind::TimedOut`] once a line has taken longer than `limit`
    /// from its first byte (a line over the size limit included, while it is skipped). A line
    /// that arrives whole in one read never arms a timer.
    pub fn with_message_timeout(mut self, limit: Duration) -> Self {
        self.message_timeout = Some(limit);
        self
    }

    /// The next line; blank lines are skipped. At end of input a final line without a newline
    /// is returned as a frame (it may be a half-sent message), then `None`.
    pub async fn next(&mut self) -> io::Result<Option<Line<'_>>> {
        // The previous frame is finished with: release what it occupied.
        if self.lent > 0 {
            self.inner.consume(std::mem::take(&mut self.lent));
        }
        if std::mem::take(&mut self.assembled) {
            // Released rather than kept: a connection between lines holds no frame buffer.
            self.buf = Vec::new();
        }
        let found = self.find().await?;
        Ok(match found {
            Found::End => None,
            Found::TooLarge => Some(Line::TooLarge),
            Found::Assembled => {
                self.assembled = true;
                Some(Line::Frame(&self.buf))
            }
            Found::InReader(len) => {
                // The buffer still holds the line (nothing was consumed), so this does no I/O.
                let available = self.inner.fill_buf().await?;
                Some(Line::Frame(&available[..len]))
            }
        })
    }

    /// Reads until a whole line is buffered, and says where it is.
    async fn find(&mut self) -> io::Result<Found> {
        loop {
            if self.eof {
                return Ok(Found::End);
            }
            // Once a line has begun, wait for the rest no longer than its message timeout.
            let deadline = self.message_timeout.zip(self.started).map(|(limit, started)| started + limit);
            let available = match deadline {
                None => self.inner.fill_buf().await?,
                Some(deadline) => match timeout_at(deadline, self.inner.fill_buf()).await {
                    Ok(filled) => filled?,
                    Err(_) => {
                        let limit = self.message_timeout.unwrap_or_default();
                        let why = format!(
                            "a message was not whole {limit:?} after its first byte ({} bytes of it read)",
                            self.buf.len()
                        );
                        return Err(io::Error::new(io::ErrorKind::TimedOut, why));
                    }
                },
            };
            if available.is_empty() {
                self.eof = true;
                if self.discarding || self.buf.iter().all(u8::is_ascii_whitespace) {
                    return Ok(Found::End);
                }
                return Ok(Found::Assembled);
            }
            let newline = available.iter().position(|&byte| byte == b'\n');
            let taken = newline.unwrap_or(available.len());
            let consumed = newline.map_or(taken, |at| at + 1);
            if self.message_timeout.is_some() {
                // A line that ends here stops its clock; one that does not starts it, if this
                // is its first piece (a skipped line's clock runs on from its start).
                self.started = match newline {
                    Some(_) => None,
                    None => self.started.or_else(|| Some(Instant::now())),
                };
            }
            if self.discarding {
                self.inner.consume(consumed);
                self.discarding = newline.is_none();
                continue;
            }
            if self.buf.len() + taken > self.max {
                self.inner.consume(consumed);
                self.buf = Vec::new();
                self.discarding = newline.is_none();
                return Ok(Found::TooLarge);
            }
            if self.buf.is_empty() && newline.is_some() {
                if available[..taken].iter().all(u8::is_ascii_whitespace) {
                    self.inner.consume(consumed);
                    continue;
                }
                self.lent = consumed;
                return Ok(Found::InReader(taken));
            }
            self.buf.extend_from_slice(&available[..taken]);
            self.inner.consume(consumed);
            if newline.is_some() {
                if self.buf.iter().all(u8::is_ascii_whitespace) {
                    self.buf.clear();
                    continue;
                }
                return Ok(Found::Assembled);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    /// What a line reads as, owned: the frame's bytes, or `None` for a line over the limit.
    async fn lines(input: &[u8], max: usize, capacity: usize) -> Vec<Option<Vec<u8>>> {
        let mut reader = LineReader::new(BufReader::with_capacity(capacity, input), max);
        let mut out = Vec::new();
        while let Some(line) = reader.next().await.unwrap() {
            out.push(match line {
                Line::Frame(frame) => Some(frame.to_vec()),
                Line::TooLarge => None,
            });
        }
        out
    }

    fn frame(bytes: &[u8]) -> Option<Vec<u8>> {
        Some(bytes.to_vec())
    }

    #[tokio::test]
    async fn frames_skip_blank_lines_and_keep_a_final_partial_line() {
        for capacity in [1, 3, 64] {
            let out = lines(b"ab\n\n  \ncd\r\nef", 10, capacity).await;
            assert_eq!(out, vec![frame(b"ab"), frame(b"cd\r"), frame(b"ef")]);
        }
    }

    #[tokio::test]
    async fn lines_split_across_reads_and_whole_lines_alternate() {
        for capacity in [1, 2, 5, 7, 64] {
            let out = lines(b"abc\n\nd\nefghij\n \nk", 6, capacity).await;
            assert_eq!(out, vec![frame(b"abc"), frame(b"d"), frame(b"efghij"), frame(b"k")], "capacity {capacity}");
        }
    }

    /// A line must be whole within the message timeout of its first byte: time between lines
    /// does not count, a line in pieces within the limit is read, a slower one (a line being
    /// skipped as too large included) fails the read with `TimedOut`.
    #[tokio::test(start_paused = true)]
    async fn a_line_slower_than_the_message_timeout_fails_the_read() {
        use tokio::{io::AsyncWriteExt, time::sleep};
        let second = Duration::from_secs(1);
        for (max, pieces, expect_first) in [(100, ["ab", "c\nd", "e\n"], frame(b"abc")), (2, ["abc", "d", "e\n"], None)]
        {
            let (mut peer, ours) = tokio::io::duplex(1024);
            let mut reader = LineReader::new(BufReader::new(ours), max).with_message_timeout(second);
            let sender = tokio::spawn(async move {
                sleep(10 * second).await;
                peer.write_all(pieces[0].as_bytes()).await.unwrap();
                sleep(second * 9 / 10).await;
                // The end of the first line in time and the start of a second one; or more of
                // a line too large, whose clock runs on while it is skipped.
                peer.write_all(pieces[1].as_bytes()).await.unwrap();
                sleep(2 * second).await;
                let _ = peer.write_all(pieces[2].as_bytes()).await;
            });
            let first = match reader.next().await.unwrap().unwrap() {
                Line::Frame(bytes) => Some(bytes.to_vec()),
                Line::TooLarge => None,
            };
            assert_eq!(first, expect_first, "max {max}");
            let error = reader.next().await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::TimedOut, "max {max}: {error}");
            sender.await.unwrap();
        }
    }

    #[tokio::test]
    async fn oversized_lines_are_reported_once_and_skipped() {
        for capacity in [1, 4, 64] {
            let out = lines(b"12345\n123456789\nok\n1234567890123", 5, capacity).await;
            assert_eq!(out, vec![frame(b"12345"), None, frame(b"ok"), None]);
        }
    }
}
