//! The JSON-RPC 2.0 message model: what one frame holds, parsed and validated, and the
//! responses written back.
//!
//! Parsing keeps every member as raw JSON text first ([`serde_json::value::RawValue`]), so a
//! request id is echoed exactly as the peer wrote it, huge and fractional numbers included, and
//! members the server ignores are never built into values.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{value::RawValue, Value};
use vproto_support::rpc::{Params, RpcError};

/// A request id exactly as the peer wrote it: a string, a number (of any size or precision) or
/// `null`.
#[derive(Clone, Debug)]
pub struct Id(Box<RawValue>);

impl Id {
    /// The `null` id, used when a request's id cannot be known (parse errors, invalid requests).
    pub fn null() -> Self {
        Id(RawValue::from_string("null".to_string()).expect("`null` is JSON"))
    }

    /// A numeric id.
    pub fn number(n: u64) -> Self {
        Id(RawValue::from_string(n.to_string()).expect("an integer is JSON"))
    }

    /// Takes a raw JSON value as an id; `None` unless it is a string, a number or `null`.
    pub fn from_raw(raw: &RawValue) -> Option<Self> {
        let text = raw.get();
        let valid = match text.as_bytes().first() {
            Some(b'"') => true,
            Some(b'-' | b'0'..=b'9') => true,
            Some(b'n') => text == "null",
            _ => false,
        };
        valid.then(|| Id(raw.to_owned()))
    }

    /// The id as JSON text, byte for byte as received.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }

    /// Whether this is the `null` id.
    pub fn is_null(&self) -> bool {
        self.0.get() == "null"
    }

    /// The id as a `serde_json::Value` (numbers beyond `f64` become `null`; use
    /// [`Id::as_json`] for the exact text).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for Id {}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.get())
    }
}

/// A valid call: a request when it has an id, a notification when it has none.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The method name.
    pub method: String,
    /// The params, by name or by position.
    pub params: Params,
    /// The id; `None` for a notification, which is never answered.
    pub id: Option<Id>,
}

impl Call {
    /// Whether the call is a notification (has no id).
    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }
}

/// One member of a frame: a valid call, or the error response an invalid one gets.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    /// A valid request or notification.
    Call(Call),
    /// Not a valid request; always answered, even when it lacked an id.
    Invalid(Response),
}

/// What one frame holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// One request, notification, or error (a parse error, an empty batch, a limit).
    Single(Entry),
    /// A non-empty batch; its answer is an array of the members' responses, or nothing when
    /// every member is a notification.
    Batch(Vec<Entry>),
}

/// A response: the result or error of one request, with its id.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The id of the request answered (`null` when it could not be read).
    pub id: Id,
    /// The result, or the error object.
    pub outcome: Result<Value, RpcError>,
}

impl Response {
    /// A success response.
    pub fn result(id: Id, result: Value) -> Self {
        Response { id, outcome: Ok(result) }
    }

    /// An error response.
    pub fn error(id: Id, error: RpcError) -> Self {
        Response { id, outcome: Err(error) }
    }

    /// The response as one line of JSON text (no newline), the id echoed byte for byte.
    pub fn to_json(&self) -> String {
        match &self.outcome {
            Ok(result) => response_line(&self.id, b"result", 128, |out| serde_json::to_writer(out, result)),
            Err(error) => response_line(&self.id, b"error", 128, |out| serde_json::to_writer(out, &error.to_json())),
        }
    }

    /// The success response to `id` whose result is JSON text written beforehand, sent byte
    /// for byte, as one line of JSON text (no newline): one copy of the text.
    pub fn with_result_text(id: &Id, result: &RawValue) -> String {
        let text = result.get().as_bytes();
        response_line(id, b"result", text.len() + 64, |out| {
            out.extend_from_slice(text);
            Ok(())
        })
    }
}

/// `{"jsonrpc":"2.0","<member>":<what write writes>,"id":<id>}`, in a buffer of `capacity`.
fn response_line(
    id: &Id,
    member: &[u8],
    capacity: usize,
    write: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
) -> String {
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(br#"{"jsonrpc":"2.0",""#);
    out.extend_from_slice(member);
    out.extend_from_slice(br#"":"#);
    write(&mut out).expect("a JSON value always serializes");
    out.extend_from_slice(br#","id":"#);
    out.extend_from_slice(id.as_json().as_bytes());
    out.push(b'}');
    String::from_utf8(out).expect("JSON text is UTF-8")
}

/// Parses one frame of JSON text (already checked for size, UTF-8 and depth) into calls.
pub fn parse(text: &str) -> Incoming {
    // A lone request object, the common case, is read in one pass; what fails is read again to
    // tell a syntax error from an invalid request.
    if text.trim_start_matches(is_json_whitespace).starts_with('{') {
        return Incoming::Single(match serde_json::from_str::<Members<'_>>(text) {
            Ok(members) => members.into_entry(),
            Err(error) => match serde_json::from_str::<&RawValue>(text) {
                Ok(_) => invalid(Id::null(), &error.to_string()),
                Err(error) => Entry::Invalid(Response::error(Id::null(), RpcError::parse_error(error.to_string()))),
            },
        });
    }
    let raw: &RawValue = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(error) => {
            return Incoming::Single(Entry::Invalid(Response::error(
                Id::null(),
                RpcError::parse_error(error.to_string()),
            )))
        }
    };
    if raw.get().starts_with('[') {
        let members: Vec<&RawValue> = match serde_json::from_str(raw.get()) {
            Ok(members) => members,
            Err(error) => {
                return Incoming::Single(Entry::Invalid(Response::error(
                    Id::null(),
                    RpcError::parse_error(error.to_string()),
                )))
            }
        };
        if members.is_empty() {
            let error = RpcError::invalid_request("an empty batch: a batch holds at least one request");
            return Incoming::Single(Entry::Invalid(Response::error(Id::null(), error)));
        }
        Incoming::Batch(members.into_iter().map(entry).collect())
    } else {
        Incoming::Single(entry(raw))
    }
}

/// The whitespace JSON allows between tokens.
fn is_json_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// The error entry of an invalid request.
fn invalid(id: Id, detail: &str) -> Entry {
    Entry::Invalid(Response::error(id, RpcError::invalid_request(detail)))
}

/// Validates one member of a batch.
fn entry(raw: &RawValue) -> Entry {
    if !raw.get().starts_with('{') {
        return invalid(Id::null(), "a request must be a JSON object");
    }
    match serde_json::from_str::<Members<'_>>(raw.get()) {
        Ok(members) => members.into_entry(),
        Err(error) => invalid(Id::null(), &error.to_string()),
    }
}

/// Whether a `jsonrpc` member is the string `"2.0"` (written plainly, or with escapes).
fn is_version_2(raw: &RawValue) -> bool {
    raw.get() == r#""2.0""# || serde_json::from_str::<String>(raw.get()).is_ok_and(|version| version == "2.0")
}

/// The members of a request object that JSON-RPC defines: `params` read as a value, the others
/// kept as raw text. Unknown members are skipped; a repeated member makes the request invalid
/// (serde_json would keep the last).
#[derive(Default)]
struct Members<'a> {
    jsonrpc: Option<&'a RawValue>,
    method: Option<&'a RawValue>,
    params: Option<Value>,
    id: Option<&'a RawValue>,
}

impl Members<'_> {
    /// Checks the members and makes the call, or the error entry that answers it.
    fn into_entry(self) -> Entry {
        let id = match self.id {
            None => None,
            Some(raw) => match Id::from_raw(raw) {
                Some(id) => Some(id),
                None => return invalid(Id::null(), "`id` must be a string, a number or null"),
            },
        };
        // The id an invalid request is answered with (built only when needed).
        let reply_id = || id.clone().unwrap_or_else(Id::null);
        match self.jsonrpc {
            Some(raw) if is_version_2(raw) => {}
            None => return invalid(reply_id(), "`jsonrpc` is missing: it must be \"2.0\""),
            Some(_) => return invalid(reply_id(), "`jsonrpc` must be \"2.0\""),
        }
        let method = match self.method {
            None => return invalid(reply_id(), "`method` is missing"),
            Some(raw) if !raw.get().starts_with('"') => return invalid(reply_id(), "`method` must be a string"),
            Some(raw) => match serde_json::from_str::<String>(raw.get()) {
                Ok(method) => method,
                Err(error) => return invalid(reply_id(), &format!("`method` is not a valid string: {error}")),
            },
        };
        let params = match self.params.map(Params::from_value) {
            None => Params::None,
            Some(Some(params)) => params,
            Some(None) => return invalid(reply_id(), "`params` must be an object or an array"),
        };
        Entry::Call(Call { method, params, id })
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
        let mut members = Members::default();
        let twice = |name: &str| de::Error::custom(format!("the member `{name}` appears twice"));
        while let Some(member) = map.next_key::<Member>()? {
            let raw = match member {
                Member::Jsonrpc => &mut members.jsonrpc,
                Member::Method => &mut members.method,
                Member::Id => &mut members.id,
                Member::Params if members.params.is_some() => return Err(twice("params")),
                Member::Params => {
                    members.params = Some(map.next_value::<Value>()?);
                    continue;
                }
                Member::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if raw.is_some() {
                return Err(twice(member.name()));
            }
            *raw = Some(map.next_value::<&'de RawValue>()?);
        }
        Ok(members)
    }
}

/// A member name of a request object, read without allocating.
#[derive(Clone, Copy)]
enum Member {
    Jsonrpc,
    Method,
    Params,
    Id,
    Other,
}

impl Member {
    fn name(self) -> &'static str {
        match self {
            Member::Jsonrpc => "jsonrpc",
            Member::Method => "method",
            Member::Params => "params",
            Member::Id => "id",
            Member::Other => "(other)",
        }
    }
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(MemberVisitor)
    }
}

struct MemberVisitor;

impl Visitor<'_> for MemberVisitor {
    type Value = Member;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Member, E> {
        Ok(match name {
            "jsonrpc" => Member::Jsonrpc,
            "method" => Member::Method,
            "params" => Member::Params,
            "id" => Member::Id,
            _ => Member::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vproto_support::rpc::codes;

    fn single(text: &str) -> Entry {
        match parse(text) {
            Incoming::Single(entry) => entry,
            other => panic!("expected a single entry, got {other:?}"),
        }
    }

    fn error_of(entry: Entry) -> (String, i64) {
        match entry {
            Entry::Invalid(Response { id, outcome: Err(error) }) => (id.as_json().to_string(), error.code),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn ids_are_kept_byte_for_byte() {
        for id in ["1", "-0", "1.50", "1e400", "123456789012345678901234567890", r#""a\u0062""#, "null"] {
            let text = format!(r#"{{"jsonrpc":"2.0","method":"m","id":{id}}}"#);
            let Entry::Call(call) = single(&text) else { panic!("{text} is valid") };
            assert_eq!(call.id.expect("has an id").as_json(), id);
        }
    }

    #[test]
    fn null_id_is_a_request_and_absent_id_a_notification() {
        let Entry::Call(call) = single(r#"{"jsonrpc":"2.0","method":"m","id":null}"#) else { panic!() };
        assert!(!call.is_notification());
        let Entry::Call(call) = single(r#"{"jsonrpc":"2.0","method":"m"}"#) else { panic!() };
        assert!(call.is_notification());
    }

    #[test]
    fn escaped_member_names_and_version_are_read() {
        let Entry::Call(call) = single(r#"{"jsonrpc":"2\u002e0","m\u0065thod":"m","params":[1],"x":{},"id":7}"#) else {
            panic!("escapes are valid JSON")
        };
        assert_eq!((call.method.as_str(), call.params), ("m", Params::ByPosition(vec![Value::from(1)])));
    }

    #[test]
    fn invalid_members_are_invalid_requests() {
        let cases = [
            (r#"{"jsonrpc":"1.0","method":"m","id":1}"#, "1"),
            (r#"{"method":"m","id":"x"}"#, r#""x""#),
            (r#"{"jsonrpc":"2.0","method":1,"id":2}"#, "2"),
            (r#"{"jsonrpc":"2.0","id":2}"#, "2"),
            (r#"{"jsonrpc":"2.0","method":"m","params":"p","id":3}"#, "3"),
            (r#"{"jsonrpc":"2.0","method":"m","params":null,"id":3}"#, "3"),
            (r#"{"jsonrpc":"2.0","method":"m","id":{}}"#, "null"),
            (r#"{"jsonrpc":"2.0","method":"m","id":true}"#, "null"),
            (r#"{"jsonrpc":"2.0","method":"m","method":"n","id":1}"#, "null"),
            ("1", "null"),
        ];
        for (text, id) in cases {
            assert_eq!(error_of(single(text)), (id.to_string(), codes::INVALID_REQUEST), "{text}");
        }
    }

    #[test]
    fn syntax_errors_and_empty_batches() {
        assert_eq!(error_of(single("{")), ("null".to_string(), codes::PARSE_ERROR));
        assert_eq!(error_of(single("[]")), ("null".to_string(), codes::INVALID_REQUEST));
        assert_eq!(error_of(single(r#"[{"jsonrpc":"2.0","method":"m"},"#)), ("null".to_string(), codes::PARSE_ERROR));
    }

    #[test]
    fn response_text() {
        let id = Id::from_raw(&RawValue::from_string("1.50".into()).unwrap()).unwrap();
        assert_eq!(Response::result(id, Value::Bool(true)).to_json(), r#"{"jsonrpc":"2.0","result":true,"id":1.50}"#);
        let error = RpcError::new(-1, "x");
        assert_eq!(
            Response::error(Id::null(), error).to_json(),
            r#"{"jsonrpc":"2.0","error":{"code":-1,"message":"x"},"id":null}"#
        );
        // A result kept as text is sent byte for byte (spacing included), in the same frame.
        let text = RawValue::from_string(r#"{"hardware": [1, 2]}"#.into()).unwrap();
        assert_eq!(
            Response::with_result_text(&Id::number(7), &text),
            r#"{"jsonrpc":"2.0","result":{"hardware": [1, 2]},"id":7}"#
        );
    }
}
