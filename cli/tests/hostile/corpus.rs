//! The corpus files: `tests/hostile/PARSER/GROUP.jsonl`, one input a line,
//! `{"name", "op"?, "expect", "input"}`, and the byte escaping of inputs.
//!
//! An input is a JSON array of segments, each a string (printable ASCII as is, `\` as `\\`,
//! any other byte as `\xNN`) or `{"repeat": SEGMENT, "times": N}` for runs (deep nesting,
//! oversized lines), so a 2 MiB line stays a short line of the file.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// One input of the corpus.
#[derive(Debug, Clone)]
pub struct Case {
    /// What it tries, unique in its parser's corpus; the part before the first `/` is its group
    /// (the file it lives in).
    pub name: String,
    /// Which entry point of the parser takes it, for parsers with several (`read` or `get_perms`
    /// for the Xenstore client, `driver` or `network` for config files).
    pub op: Option<String>,
    /// The bytes.
    pub input: Vec<u8>,
    /// The outcome it must have (absent in a line added by hand before regenerating).
    pub expect: Option<Value>,
}

/// The file generated inputs are never written to: inputs added by hand, kept when the corpus
/// is regenerated.
pub const ADDED: &str = "added";

/// Where a parser's corpus lives.
pub fn dir(parser: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/hostile").join(parser)
}

/// The group (file stem) of a case.
pub fn group(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

fn escape_plain(bytes: &[u8]) -> String {
    let mut text = String::new();
    for &byte in bytes {
        match byte {
            b'\\' => text.push_str("\\\\"),
            0x20..=0x7e => text.push(byte as char),
            _ => text.push_str(&format!("\\x{byte:02x}")),
        }
    }
    text
}

/// `bytes` as segments: a pattern of up to 8 bytes repeated 64 times or more becomes a
/// `repeat` segment.
pub fn escape(bytes: &[u8]) -> Value {
    let mut segments = Vec::new();
    let mut plain = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let run = (1..=8).filter(|p| at + p <= bytes.len()).find_map(|p| {
            let pattern = &bytes[at..at + p];
            let times = bytes[at..].chunks_exact(p).take_while(|chunk| *chunk == pattern).count();
            (times >= 64).then_some((p, times))
        });
        match run {
            Some((p, times)) => {
                if !plain.is_empty() {
                    segments.push(json!(escape_plain(&plain)));
                    plain.clear();
                }
                segments.push(json!({"repeat": escape_plain(&bytes[at..at + p]), "times": times}));
                at += p * times;
            }
            None => {
                plain.push(bytes[at]);
                at += 1;
            }
        }
    }
    if !plain.is_empty() || segments.is_empty() {
        segments.push(json!(escape_plain(&plain)));
    }
    Value::Array(segments)
}

fn unescape_plain(text: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let mut chars = text.bytes();
    while let Some(byte) = chars.next() {
        if byte != b'\\' {
            bytes.push(byte);
            continue;
        }
        match chars.next() {
            Some(b'\\') => bytes.push(b'\\'),
            Some(b'x') => {
                let hex: Vec<u8> = chars.by_ref().take(2).collect();
                let byte = std::str::from_utf8(&hex).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                bytes.push(byte.ok_or_else(|| format!("a bad \\x escape in {text:?}"))?);
            }
            other => return Err(format!("a bad escape {:?} in {text:?}", other.map(char::from))),
        }
    }
    Ok(bytes)
}

/// The bytes of an escaped input.
pub fn unescape(value: &Value) -> Result<Vec<u8>, String> {
    let segments = value.as_array().ok_or_else(|| format!("an input is an array of segments, not {value}"))?;
    let mut bytes = Vec::new();
    for segment in segments {
        match segment {
            Value::String(text) => bytes.extend(unescape_plain(text)?),
            Value::Object(_) => {
                let pattern = segment["repeat"].as_str().ok_or("a repeat segment's `repeat` is a string")?;
                let times = segment["times"].as_u64().ok_or("a repeat segment's `times` is a count")?;
                bytes.extend(unescape_plain(pattern)?.repeat(times as usize));
            }
            other => return Err(format!("not a segment: {other}")),
        }
    }
    Ok(bytes)
}

fn parse_line(line: &str) -> Result<Case, String> {
    let entry: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let name = entry["name"].as_str().ok_or("no `name`")?.to_string();
    let op = match &entry["op"] {
        Value::Null => None,
        Value::String(op) => Some(op.clone()),
        other => return Err(format!("`op` is not a string: {other}")),
    };
    let expect = entry.get("expect").cloned();
    Ok(Case { name, op, input: unescape(&entry["input"])?, expect })
}

/// The cases of every file of `dir`, by file stem (sorted), in file order.
pub fn read(dir: &Path) -> Vec<(String, Vec<Case>)> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let cases = text
                .lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(number, line)| {
                    parse_line(line).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), number + 1))
                })
                .collect();
            let stem = path.file_stem().expect("a .jsonl file has a stem").to_string_lossy().into_owned();
            (stem, cases)
        })
        .collect()
}

/// The files regenerating writes: the generator's cases by group, then the hand-added file as
/// it is.
pub fn regenerated(dir: &Path, generated: Vec<Case>) -> Vec<(String, Vec<Case>)> {
    let mut files: Vec<(String, Vec<Case>)> = Vec::new();
    for case in generated {
        let group = group(&case.name).to_string();
        assert_ne!(group, ADDED, "the generator writes no input named {}/...", ADDED);
        match files.iter_mut().find(|(stem, _)| *stem == group) {
            Some((_, cases)) => cases.push(case),
            None => files.push((group, vec![case])),
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    if dir.exists() {
        files.extend(read(dir).into_iter().filter(|(stem, _)| stem == ADDED));
    }
    files
}

/// Writes `files` into `dir`, removing any other `.jsonl` file there.
pub fn write(dir: &Path, files: &[(String, Vec<Case>)]) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    for entry in std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()) {
        let stem = entry.file_stem().map(|stem| stem.to_string_lossy().into_owned());
        let kept = stem.is_some_and(|stem| files.iter().any(|(name, _)| *name == stem));
        if entry.extension().is_some_and(|ext| ext == "jsonl") && !kept {
            std::fs::remove_file(&entry).unwrap();
        }
    }
    for (stem, cases) in files {
        let mut text = String::new();
        for case in cases {
            text.push_str(&format!("{{\"name\":{}", json!(case.name)));
            if let Some(op) = &case.op {
                text.push_str(&format!(",\"op\":{}", json!(op)));
            }
            let expect = case.expect.as_ref().expect("every case has its outcome once run");
            text.push_str(&format!(",\"expect\":{expect},\"input\":{}}}\n", escape(&case.input)));
        }
        let path = dir.join(format!("{stem}.jsonl"));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}
