//! Bearer tokens for TCP and HTTP listeners, and the [`Credentials`] that tell callers' roles
//! apart.
//!
//! Line transports expect `{"jsonrpc":"2.0","method":"rpc.auth","params":{"token":"..."},"id":...}`
//! as the first message of a connection; HTTP expects `Authorization: Bearer TOKEN` on every
//! request. Unix sockets (mode 0600) and stdio need no token.
//!
//! The token a caller presents says who it is: a role's token makes it that role (the
//! generated dispatchers then refuse the methods the schema does not open to it, see
//! `vproto_support::rpc::roles`), a shared token trusts it with every method.

use std::{fmt, fs, io::Read, os::unix::fs::PermissionsExt, path::Path, path::PathBuf};

use vproto_support::rpc::roles::Caller;

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

/// The tokens a listener accepts, each with the caller it makes of whoever presents it.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    entries: Vec<(Token, Caller)>,
}

/// Why a role's token could not be added.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// A role name must be lower_snake_case.
    #[error("`{0}` is not a role name (use lower_snake_case, such as driver or operator)")]
    BadRole(String),
    /// Two roles (or a role and the shared token) hold the same token, so a caller could not
    /// be told apart.
    #[error("the token of {0} is also the token of {1}; give each role its own")]
    Reused(String, String),
}

fn describe_caller(caller: &Caller) -> String {
    match caller {
        Caller::Trusted => "the shared token".to_string(),
        Caller::Role(role) => format!("the role `{role}`"),
    }
}

impl Credentials {
    /// No token yet: a listener with these accepts nobody on `tcp:`/`http://`.
    pub fn new() -> Self {
        Credentials::default()
    }

    /// One shared token, trusted with every method.
    pub fn shared(token: Token) -> Self {
        Credentials { entries: vec![(token, Caller::Trusted)] }
    }

    /// Adds a token trusted with every method.
    pub fn with_shared(self, token: Token) -> Result<Self, CredentialsError> {
        self.push(token, Caller::Trusted)
    }

    /// Adds the token of `role`.
    pub fn with_role(self, role: &str, token: Token) -> Result<Self, CredentialsError> {
        let valid = role.starts_with(|c: char| c.is_ascii_lowercase())
            && role.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(CredentialsError::BadRole(role.to_string()));
        }
        self.push(token, Caller::role(role))
    }

    fn push(mut self, token: Token, caller: Caller) -> Result<Self, CredentialsError> {
        if let Some((_, other)) = self.entries.iter().find(|(known, _)| known.matches(token.secret())) {
            return Err(CredentialsError::Reused(describe_caller(&caller), describe_caller(other)));
        }
        self.entries.push((token, caller));
        Ok(self)
    }

    /// Whether no token is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The roles that have a token, in the order added.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().filter_map(|(_, caller)| match caller {
            Caller::Role(role) => Some(&**role),
            Caller::Trusted => None,
        })
    }

    /// Who presents `candidate`, if anyone. Every token is compared (each in constant time), so
    /// the time taken does not tell which one came close.
    pub fn identify(&self, candidate: &str) -> Option<Caller> {
        let mut found = None;
        for (token, caller) in &self.entries {
            if token.matches(candidate) && found.is_none() {
                found = Some(caller.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_names_its_caller_and_none_is_shared_twice() {
        let token = |text: &str| Token::new(text).unwrap();
        let credentials = Credentials::new()
            .with_role("driver", token("d-secret"))
            .unwrap()
            .with_role("operator", token("o-secret"))
            .unwrap()
            .with_shared(token("s-secret"))
            .unwrap();
        assert_eq!(credentials.identify("d-secret"), Some(Caller::role("driver")));
        assert_eq!(credentials.identify("o-secret"), Some(Caller::role("operator")));
        assert_eq!(credentials.identify("s-secret"), Some(Caller::Trusted));
        assert_eq!(credentials.identify("d-secre"), None);
        assert_eq!(credentials.roles().collect::<Vec<_>>(), ["driver", "operator"]);
        let reused = credentials.clone().with_role("agent", token("o-secret")).unwrap_err();
        assert_eq!(
            reused.to_string(),
            "the token of the role `agent` is also the token of the role `operator`; give each role its own"
        );
        assert!(matches!(credentials.with_role("Agent", token("x")), Err(CredentialsError::BadRole(_))));
    }
}
