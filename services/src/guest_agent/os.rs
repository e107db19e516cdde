//! OS identification: `/etc/os-release` (os-release(5)) and the kernel release (`uname -r`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vproto_api::OsInfo;

/// Where os-release(5) says to look, in order.
pub const OS_RELEASE_PATHS: &[&str] = &["/etc/os-release", "/usr/lib/os-release"];
/// The kernel release, the same string `uname -r` prints (`utsname.release`).
pub const KERNEL_RELEASE_PATH: &str = "/proc/sys/kernel/osrelease";
/// Longest value accepted from either file; anything longer is not an identifier.
const MAX_VALUE_LEN: usize = 256;

/// One line of an os-release file that could not be read; the line is skipped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct OsReleaseIssue {
    /// The file.
    pub file: String,
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses os-release(5) text: `KEY=VALUE` lines, `#` comments and blank lines; values may be
/// unquoted, or in single quotes, or in double quotes where `\` escapes `"`, `\`, `$` and `` ` ``.
/// Returns the variables and the lines that were skipped, with why.
pub fn parse_os_release(text: &str, file: &str) -> (BTreeMap<String, String>, Vec<OsReleaseIssue>) {
    let mut values = BTreeMap::new();
    let mut issues = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let issue = |reason: String| OsReleaseIssue { file: file.to_string(), line: number + 1, reason };
        let Some((key, raw)) = line.split_once('=') else {
            issues.push(issue("expected KEY=VALUE".into()));
            continue;
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
            issues.push(issue(format!("variable name {key:?} is not [A-Z0-9_]+")));
            continue;
        }
        match unquote(raw) {
            Ok(value) if value.chars().any(char::is_control) => {
                issues.push(issue(format!("{key}: value contains control characters")))
            }
            Ok(value) if value.len() > MAX_VALUE_LEN => {
                issues.push(issue(format!("{key}: value longer than {MAX_VALUE_LEN} bytes")))
            }
            Ok(value) => {
                values.insert(key.to_string(), value);
            }
            Err(reason) => issues.push(issue(format!("{key}: {reason}"))),
        }
    }
    (values, issues)
}

fn unquote(raw: &str) -> Result<String, &'static str> {
    if let Some(rest) = raw.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    return if chars.as_str().is_empty() { Ok(out) } else { Err("text after the closing quote") };
                }
                '\\' => match chars.next() {
                    Some(escaped @ ('"' | '\\' | '$' | '`')) => out.push(escaped),
                    Some(other) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => return Err("unterminated double quote"),
                },
                other => out.push(other),
            }
        }
        Err("unterminated double quote")
    } else if let Some(rest) = raw.strip_prefix('\'') {
        match rest.split_once('\'') {
            Some((value, "")) => Ok(value.to_string()),
            Some(_) => Err("text after the closing quote"),
            None => Err("unterminated single quote"),
        }
    } else if raw.contains(|c: char| c.is_whitespace() || "\"'\\$`".contains(c)) {
        Err("unquoted value with spaces or shell characters")
    } else {
        Ok(raw.to_string())
    }
}

/// Whether `id` is a valid `OsInfo.distro` (the schema's pattern `^[a-z0-9][a-z0-9._-]*$`, at
/// most 64 bytes; os-release's `ID` follows the same rule).
fn valid_distro(id: &str) -> bool {
    id.len() <= 64
        && id.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Builds the [`OsInfo`] from os-release variables and the kernel release: `NAME` (os-release's
/// default "Linux" when absent), `VERSION_ID`, `ID` (dropped with a warning when it breaks
/// the schema's pattern).
pub fn os_info_from(values: &BTreeMap<String, String>, kernel_release: Option<String>) -> OsInfo {
    let distro = values.get("ID").filter(|id| !id.is_empty()).and_then(|id| {
        if valid_distro(id) {
            Some(id.clone())
        } else {
            tracing::warn!(id = %id, "os-release ID is not a lower-case identifier; OS distro not published");
            None
        }
    });
    OsInfo {
        name: values.get("NAME").filter(|name| !name.is_empty()).cloned().unwrap_or_else(|| "Linux".to_string()),
        version: values.get("VERSION_ID").filter(|version| !version.is_empty()).cloned(),
        distro,
        kernel_version: kernel_release,
    }
}

/// Where the OS data is read from; [`OsSources::default`] is the real system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsSources {
    /// os-release candidates, the first readable one wins.
    pub os_release: Vec<PathBuf>,
    /// The kernel release file.
    pub kernel_release: PathBuf,
}

impl Default for OsSources {
    fn default() -> Self {
        OsSources {
            os_release: OS_RELEASE_PATHS.iter().map(PathBuf::from).collect(),
            kernel_release: PathBuf::from(KERNEL_RELEASE_PATH),
        }
    }
}

/// Reads the OS identification. Missing or unreadable files are logged and leave the fields
/// they would fill absent; bad lines are logged and skipped. Never fails.
pub fn collect_os_info(sources: &OsSources) -> OsInfo {
    let values = sources
        .os_release
        .iter()
        .find_map(|path| read_text(path).map(|text| (path, text)))
        .map(|(path, text)| {
            let (values, issues) = parse_os_release(&text, &path.display().to_string());
            for issue in issues {
                tracing::warn!(%issue, "os-release line skipped");
            }
            values
        })
        .unwrap_or_else(|| {
            tracing::warn!(paths = ?sources.os_release, "no readable os-release file; OS name published as \"Linux\"");
            BTreeMap::new()
        });
    let kernel = read_text(&sources.kernel_release).and_then(|text| {
        let release = text.trim();
        if release.is_empty() || release.len() > MAX_VALUE_LEN || release.chars().any(char::is_control) {
            tracing::warn!(path = %sources.kernel_release.display(), "kernel release is empty or not printable; not published");
            None
        } else {
            Some(release.to_string())
        }
    });
    os_info_from(&values, kernel)
}

fn read_text(path: &Path) -> Option<String> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(_) => {
                tracing::warn!(path = %path.display(), "not UTF-8; ignored");
                None
            }
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoting_and_reports_bad_lines() {
        let text =
            "# comment\nNAME=\"Debian GNU/Linux\"\nVERSION_ID='12'\nID=debian\nPRETTY_NAME=\"a \\\"q\\\" \\$x\"\n\
                    bad line\nlower=x\nX=\"open\nY=a b\n";
        let (values, issues) = parse_os_release(text, "os-release");
        assert_eq!(values["NAME"], "Debian GNU/Linux");
        assert_eq!(values["VERSION_ID"], "12");
        assert_eq!(values["ID"], "debian");
        assert_eq!(values["PRETTY_NAME"], "a \"q\" $x");
        let lines: Vec<usize> = issues.iter().map(|issue| issue.line).collect();
        assert_eq!(lines, [6, 7, 8, 9], "{issues:?}");
        let info = os_info_from(&values, Some("6.1.0-18-amd64".into()));
        assert_eq!(info.name, "Debian GNU/Linux");
        assert_eq!(info.version.as_deref(), Some("12"));
        assert_eq!(info.distro.as_deref(), Some("debian"));
        assert_eq!(info.kernel_version.as_deref(), Some("6.1.0-18-amd64"));
    }

    #[test]
    fn defaults_and_invalid_id() {
        let (values, _) = parse_os_release("ID=\"Not Valid\"\n", "f");
        let info = os_info_from(&values, None);
        assert_eq!(info.name, "Linux");
        assert_eq!(info.version, None);
        assert_eq!(info.distro, None);
    }

    #[test]
    fn reads_files() {
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join("os-release");
        let kernel = dir.path().join("osrelease");
        std::fs::write(&release, "NAME=Alpine\nVERSION_ID=3.20.1\nID=alpine\n").unwrap();
        std::fs::write(&kernel, "6.6.1\n").unwrap();
        let sources = OsSources { os_release: vec![dir.path().join("missing"), release], kernel_release: kernel };
        let info = collect_os_info(&sources);
        assert_eq!((info.name.as_str(), info.version.as_deref()), ("Alpine", Some("3.20.1")));
        assert_eq!(info.kernel_version.as_deref(), Some("6.6.1"));
    }
}
