//! Bearer tokens for TCP and HTTP listeners.
//!
//! Line transports expect `{"jsonrpc":"2.0","method":"rpc.auth","params":{"token":"..."},"id":...}`
//! as the first message of a connection; HTTP expects `Authorization: Bearer TOKEN` on every
//! request. Unix sockets (mode 0600) and stdio need no token.

use std::{fmt, fs, io::Read, os::unix::fs::PermissionsExt, path::Path, path::PathBuf};

/// A shared secret. Its `Debug` output never shows the secret; comparisons take the same time
/// whatever the position of the first differing byte.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// A token from a string; fails on an empty (or all-whitespace) one. Surrounding whitespace
    /// is trimmed, as when the token is read from a file.
    pub fn new(secret: impl AsRef<str>) -> Result<Self, TokenError> {
        let secret = secret.as_ref().trim();
        if secret.is_empty() {
            return Err(TokenError::Empty { path: None });
        }
        Ok(Token(secret.to_string()))
    }

    /// The secret, for sending it.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this token, in time independent of where they differ.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Why a token could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be opened or read.
    #[error("cannot read token file {}: {source}", path.display())]
    Read {
        /// The token file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file can be read by other users, so the token is not secret.
    #[error(
        "token file {} is readable by group or others (mode {mode:04o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    TooOpen {
        /// The token file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds no token.
    #[error("{}", match path { Some(path) => format!("token file {} is empty", path.display()), None => "the token is empty".to_string() })]
    Empty {
        /// The token file, when read from one.
        path: Option<PathBuf>,
    },
    /// The file is not valid UTF-8 text.
    #[error("token file {} is not UTF-8 text", path.display())]
    NotText {
        /// The token file.
        path: PathBuf,
    },
    /// The path is not a regular file.
    #[error("token file {} is not a regular file", path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
}

/// Loads a token from a `--token-file`: the file must be a regular file readable by its owner
/// only (no group/other permission bits), and holds the token with optional surrounding
/// whitespace (a trailing newline, typically).
pub fn load_token(path: impl AsRef<Path>) -> Result<Token, TokenError> {
    let path = path.as_ref();
    let read_error = |source| TokenError::Read { path: path.to_path_buf(), source };
    let mut file = fs::File::open(path).map_err(read_error)?;
    // Check the opened file, not the path, so a swap between check and read cannot fool us.
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(TokenError::NotAFile { path: path.to_path_buf() });
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(TokenError::TooOpen { path: path.to_path_buf(), mode });
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(read_error)?;
    let text = String::from_utf8(bytes).map_err(|_| TokenError::NotText { path: path.to_path_buf() })?;
    Token::new(text).map_err(|_| TokenError::Empty { path: Some(path.to_path_buf()) })
}
