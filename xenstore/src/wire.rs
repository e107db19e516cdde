//! The Xenstore wire protocol shared by the client and the embedded server.
//!
//! Every message, in either direction, is a 16-byte header (`struct xsd_sockmsg` of Xen's
//! `xs_wire.h`: type, request id, transaction id, payload length, each a native-endian `u32`)
//! followed by `len` bytes of payload, usually NUL-terminated strings. Errors travel as the
//! *name* of an errno value (`"ENOENT"`), never its number.

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Maximum payload length in either direction (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = 4096;
/// Maximum length of an absolute path (`XENSTORE_ABS_PATH_MAX`).
pub const ABS_PATH_MAX: usize = 3072;
/// Maximum length of a relative path (`XENSTORE_REL_PATH_MAX`).
pub const REL_PATH_MAX: usize = 2048;
/// Length of the message header.
pub const HEADER_LEN: usize = 16;

/// The message types of `enum xsd_sockmsg_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MsgType {
    /// `XS_CONTROL` (formerly `XS_DEBUG`): implementation-specific commands.
    Control,
    /// `XS_DIRECTORY`: the leaf names of a node's children.
    Directory,
    /// `XS_READ`: a node's value.
    Read,
    /// `XS_GET_PERMS`: a node's permissions.
    GetPerms,
    /// `XS_WATCH`: register a watch.
    Watch,
    /// `XS_UNWATCH`: remove a watch.
    Unwatch,
    /// `XS_TRANSACTION_START`.
    TransactionStart,
    /// `XS_TRANSACTION_END` (`T` commits, `F` aborts).
    TransactionEnd,
    /// `XS_INTRODUCE`: a toolstack announces a domain.
    Introduce,
    /// `XS_RELEASE`: a toolstack releases a domain.
    Release,
    /// `XS_GET_DOMAIN_PATH`: `/local/domain/<domid>`.
    GetDomainPath,
    /// `XS_WRITE`: store a value, creating missing parents.
    Write,
    /// `XS_MKDIR`: make sure a node exists.
    Mkdir,
    /// `XS_RM`: remove a node and its subtree.
    Rm,
    /// `XS_SET_PERMS`: replace a node's permissions.
    SetPerms,
    /// `XS_WATCH_EVENT`: unsolicited watch notification.
    WatchEvent,
    /// `XS_ERROR`: error reply, payload is the errno name.
    Error,
    /// `XS_IS_DOMAIN_INTRODUCED`.
    IsDomainIntroduced,
    /// `XS_RESUME`.
    Resume,
    /// `XS_SET_TARGET`.
    SetTarget,
    /// `XS_RESTRICT` (removed from Xen; answered as unsupported).
    Restrict,
    /// `XS_RESET_WATCHES`: drop every watch and transaction of the caller.
    ResetWatches,
    /// `XS_DIRECTORY_PART`: a slice of a long children list.
    DirectoryPart,
    /// `XS_GET_FEATURE`.
    GetFeature,
    /// `XS_SET_FEATURE`.
    SetFeature,
    /// `XS_GET_QUOTA`.
    GetQuota,
    /// `XS_SET_QUOTA`.
    SetQuota,
    /// `XS_INVALID` (0xffff), guaranteed to stay invalid.
    Invalid,
}

impl MsgType {
    const TABLE: [(MsgType, u32, &'static str); 28] = [
        (MsgType::Control, 0, "CONTROL"),
        (MsgType::Directory, 1, "DIRECTORY"),
        (MsgType::Read, 2, "READ"),
        (MsgType::GetPerms, 3, "GET_PERMS"),
        (MsgType::Watch, 4, "WATCH"),
        (MsgType::Unwatch, 5, "UNWATCH"),
        (MsgType::TransactionStart, 6, "TRANSACTION_START"),
        (MsgType::TransactionEnd, 7, "TRANSACTION_END"),
        (MsgType::Introduce, 8, "INTRODUCE"),
        (MsgType::Release, 9, "RELEASE"),
        (MsgType::GetDomainPath, 10, "GET_DOMAIN_PATH"),
        (MsgType::Write, 11, "WRITE"),
        (MsgType::Mkdir, 12, "MKDIR"),
        (MsgType::Rm, 13, "RM"),
        (MsgType::SetPerms, 14, "SET_PERMS"),
        (MsgType::WatchEvent, 15, "WATCH_EVENT"),
        (MsgType::Error, 16, "ERROR"),
        (MsgType::IsDomainIntroduced, 17, "IS_DOMAIN_INTRODUCED"),
        (MsgType::Resume, 18, "RESUME"),
        (MsgType::SetTarget, 19, "SET_TARGET"),
        (MsgType::Restrict, 20, "RESTRICT"),
        (MsgType::ResetWatches, 21, "RESET_WATCHES"),
        (MsgType::DirectoryPart, 22, "DIRECTORY_PART"),
        (MsgType::GetFeature, 23, "GET_FEATURE"),
        (MsgType::SetFeature, 24, "SET_FEATURE"),
        (MsgType::GetQuota, 25, "GET_QUOTA"),
        (MsgType::SetQuota, 26, "SET_QUOTA"),
        (MsgType::Invalid, 0xffff, "INVALID"),
    ];

    /// The type for a header's `type` field, `None` when Xen defines no such type.
    pub fn from_u32(value: u32) -> Option<MsgType> {
        Self::TABLE.iter().find(|(_, v, _)| *v == value).map(|(t, _, _)| *t)
    }

    /// The numeric value sent in the header.
    pub fn as_u32(self) -> u32 {
        Self::TABLE.iter().find(|(t, _, _)| *t == self).map(|(_, v, _)| *v).unwrap_or(0xffff)
    }

    /// The name without the `XS_` prefix, as in `xs_wire.h`.
    pub fn name(self) -> &'static str {
        Self::TABLE.iter().find(|(t, _, _)| *t == self).map(|(_, _, n)| *n).unwrap_or("INVALID")
    }
}

impl fmt::Display for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error names a Xenstore server may answer (`xsd_errors` of `xs_wire.h`, plus oxenstored's
/// `EQUOTA`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `EINVAL`: malformed request or path.
    Inval,
    /// `EACCES`: permission denied.
    Acces,
    /// `EEXIST`: already exists (a watch with the same path and token).
    Exist,
    /// `EISDIR`.
    IsDir,
    /// `ENOENT`: no such node, transaction or watch.
    NoEnt,
    /// `ENOMEM`.
    NoMem,
    /// `ENOSPC`: node or transaction quota exceeded, value too large.
    NoSpc,
    /// `EIO`.
    Io,
    /// `ENOTEMPTY`.
    NotEmpty,
    /// `ENOSYS`: unsupported request type.
    NoSys,
    /// `EROFS`.
    RoFs,
    /// `EBUSY`: e.g. TRANSACTION_START inside a transaction.
    Busy,
    /// `EAGAIN`: transaction conflict, retry it.
    Again,
    /// `EISCONN`.
    IsConn,
    /// `E2BIG`: reply too large, or watch quota exceeded.
    TooBig,
    /// `EPERM`: operation not permitted (changing a node's owner as a guest).
    Perm,
    /// `EQUOTA`: quota exceeded (oxenstored's name; not in `xs_wire.h`).
    Quota,
}

impl ErrorCode {
    /// Every code, in `xs_wire.h` order.
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::Inval,
        ErrorCode::Acces,
        ErrorCode::Exist,
        ErrorCode::IsDir,
        ErrorCode::NoEnt,
        ErrorCode::NoMem,
        ErrorCode::NoSpc,
        ErrorCode::Io,
        ErrorCode::NotEmpty,
        ErrorCode::NoSys,
        ErrorCode::RoFs,
        ErrorCode::Busy,
        ErrorCode::Again,
        ErrorCode::IsConn,
        ErrorCode::TooBig,
        ErrorCode::Perm,
        ErrorCode::Quota,
    ];

    /// The errno name sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Inval => "EINVAL",
            ErrorCode::Acces => "EACCES",
            ErrorCode::Exist => "EEXIST",
            ErrorCode::IsDir => "EISDIR",
            ErrorCode::NoEnt => "ENOENT",
            ErrorCode::NoMem => "ENOMEM",
            ErrorCode::NoSpc => "ENOSPC",
            ErrorCode::Io => "EIO",
            ErrorCode::NotEmpty => "ENOTEMPTY",
            ErrorCode::NoSys => "ENOSYS",
            ErrorCode::RoFs => "EROFS",
            ErrorCode::Busy => "EBUSY",
            ErrorCode::Again => "EAGAIN",
            ErrorCode::IsConn => "EISCONN",
            ErrorCode::TooBig => "E2BIG",
            ErrorCode::Perm => "EPERM",
            ErrorCode::Quota => "EQUOTA",
        }
    }

    /// The code for an errno name, `None` for a name no Xenstore sends.
    pub fn parse(name: &str) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|code| code.as_str() == name)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message header (`struct xsd_sockmsg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The raw message type (see [`MsgType`]); kept raw so unknown types can be answered.
    pub msg_type: u32,
    /// Request id, echoed in the reply; 0 in watch events.
    pub req_id: u32,
    /// Transaction id, 0 outside transactions.
    pub tx_id: u32,
    /// Payload length.
    pub len: u32,
}

impl Header {
    /// Encodes the header in native byte order, as Xen's C structure is laid out.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.msg_type.to_ne_bytes());
        out[4..8].copy_from_slice(&self.req_id.to_ne_bytes());
        out[8..12].copy_from_slice(&self.tx_id.to_ne_bytes());
        out[12..16].copy_from_slice(&self.len.to_ne_bytes());
        out
    }

    /// Decodes a header.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Header {
        let word = |i: usize| u32::from_ne_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Header { msg_type: word(0), req_id: word(4), tx_id: word(8), len: word(12) }
    }
}

/// One whole message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The raw message type.
    pub msg_type: u32,
    /// Request id.
    pub req_id: u32,
    /// Transaction id.
    pub tx_id: u32,
    /// The payload, at most [`PAYLOAD_MAX`] bytes.
    pub payload: Vec<u8>,
}

impl Message {
    /// A message of a known type.
    pub fn new(msg_type: MsgType, req_id: u32, tx_id: u32, payload: Vec<u8>) -> Message {
        Message { msg_type: msg_type.as_u32(), req_id, tx_id, payload }
    }

    /// The message type, `None` when unknown.
    pub fn kind(&self) -> Option<MsgType> {
        MsgType::from_u32(self.msg_type)
    }

    /// Header and payload as one buffer. The caller has checked the payload length.
    pub fn encode(&self) -> Vec<u8> {
        let header =
            Header { msg_type: self.msg_type, req_id: self.req_id, tx_id: self.tx_id, len: self.payload.len() as u32 };
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// Why a message could not be read from a stream.
#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the stream between two messages.
    Eof,
    /// The stream failed, or ended inside a message.
    Io(std::io::Error),
    /// The header announced more than [`PAYLOAD_MAX`] bytes; the stream cannot be resynchronised.
    TooLong {
        /// The header that announced it.
        header: Header,
    },
}

/// Reads one message: a header, then exactly `len` payload bytes (refused above [`PAYLOAD_MAX`]
/// before anything is allocated).
pub async fn read_message<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Message, FrameError> {
    let mut head = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match reader.read(&mut head[filled..]).await {
            Ok(0) if filled == 0 => return Err(FrameError::Eof),
            Ok(0) => {
                return Err(FrameError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("stream ended after {filled} of the {HEADER_LEN} header bytes"),
                )))
            }
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(FrameError::Io(error)),
        }
    }
    let header = Header::decode(&head);
    if header.len as usize > PAYLOAD_MAX {
        return Err(FrameError::TooLong { header });
    }
    let mut payload = vec![0u8; header.len as usize];
    reader.read_exact(&mut payload).await.map_err(FrameError::Io)?;
    Ok(Message { msg_type: header.msg_type, req_id: header.req_id, tx_id: header.tx_id, payload })
}

/// Appends `s` and its terminating NUL.
pub fn push_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s);
    out.push(0);
}

/// A payload of NUL-terminated strings.
pub fn strings_payload(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for part in parts {
        push_str(&mut out, part);
    }
    out
}

/// Splits a payload of NUL-terminated strings. A final string without its NUL is accepted (some
/// clients omit it); an empty payload is an empty list.
pub fn split_strings(payload: &[u8]) -> Vec<&[u8]> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    if payload.is_empty() {
        return Vec::new();
    }
    body.split(|b| *b == 0).collect()
}

/// What may follow the NUL-terminated strings of a request (`xenstore.txt`'s payload syntax).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Nothing: the payload ends with the last string's NUL.
    Nothing,
    /// A reserved value (`?`): bytes without a NUL, normally none, ignored.
    Reserved,
    /// Binary data (`<value|>`), NULs included: a WRITE's value.
    Binary,
}

/// How a request's payload is laid out: at least `min` and at most `max` (`None`: any number)
/// NUL-terminated strings, then the [`Tail`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Fewest strings.
    pub min: usize,
    /// Most strings; `None` for a list (SET_PERMS' permissions).
    pub max: Option<usize>,
    /// What may follow them.
    pub tail: Tail,
}

impl Shape {
    /// Exactly `count` strings and nothing after them (`<path>|`, `T|`, `|`).
    pub const fn strings(count: usize) -> Shape {
        Shape { min: count, max: Some(count), tail: Tail::Nothing }
    }

    /// Exactly `count` strings, then a reserved value (`<wpath>|<token>|?`).
    pub const fn strings_then_reserved(count: usize) -> Shape {
        Shape { min: count, max: Some(count), tail: Tail::Reserved }
    }
}

impl MsgType {
    /// The payload a client must send with a request of this type, as `xenstore.txt` (and C
    /// xenstored, where the text is loose) defines it; `None` for types that are not requests
    /// with a defined payload (replies, `CONTROL`'s implementation-specific commands, types Xen
    /// added without documenting them here, `INVALID`).
    ///
    /// | type | payload |
    /// |---|---|
    /// | READ, DIRECTORY, GET_PERMS, MKDIR, RM | `<path>\|` |
    /// | WRITE | `<path>\|<value\|>` |
    /// | DIRECTORY_PART | `<path>\|<offset>\|` (C xenstored and libxenstore terminate the offset) |
    /// | SET_PERMS | `<path>\|<perm-as-string>\|+?` |
    /// | WATCH, UNWATCH | `<wpath>\|<token>\|?` |
    /// | TRANSACTION_START, RESET_WATCHES | `\|` |
    /// | TRANSACTION_END | `T\|` or `F\|` |
    /// | INTRODUCE | `<domid>\|<mfn>\|<evtchn>\|?` |
    /// | RELEASE, GET_DOMAIN_PATH, IS_DOMAIN_INTRODUCED, RESUME | `<domid>\|` |
    /// | SET_TARGET | `<domid>\|<tdomid>\|` |
    pub fn request_shape(self) -> Option<Shape> {
        use MsgType::*;
        Some(match self {
            Read | Directory | GetPerms | Mkdir | Rm => Shape::strings(1),
            Write => Shape { min: 1, max: Some(1), tail: Tail::Binary },
            DirectoryPart => Shape::strings(2),
            SetPerms => Shape { min: 2, max: None, tail: Tail::Reserved },
            Watch | Unwatch => Shape::strings_then_reserved(2),
            TransactionStart | ResetWatches | TransactionEnd => Shape::strings(1),
            Introduce => Shape::strings_then_reserved(3),
            Release | GetDomainPath | IsDomainIntroduced | Resume => Shape::strings(1),
            SetTarget => Shape::strings(2),
            Control | WatchEvent | Error | Restrict | GetFeature | SetFeature | GetQuota | SetQuota | Invalid => {
                return None
            }
        })
    }
}

/// A payload split as its [`Shape`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args<'a> {
    /// The NUL-terminated strings, without their NULs.
    pub strings: Vec<&'a [u8]>,
    /// What follows them: a WRITE's value, a reserved value, or nothing.
    pub tail: &'a [u8],
}

/// Why a payload does not have its request's [`Shape`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeError {
    /// Fewer NUL-terminated strings than the request needs.
    Missing {
        /// How many it needs.
        expected: usize,
        /// How many the payload holds.
        found: usize,
        /// Bytes after the last NUL (a string missing its terminator).
        unterminated: usize,
    },
    /// Bytes after the last argument where the request allows none.
    Trailing {
        /// Where they start.
        offset: usize,
        /// How many.
        len: usize,
    },
    /// A NUL inside a reserved value (`?`, which holds none): one string too many.
    NulInReserved {
        /// Where the reserved value starts.
        offset: usize,
    },
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::Missing { expected, found, unterminated: 0 } => {
                write!(f, "expected at least {expected} NUL-terminated strings, found {found}")
            }
            ShapeError::Missing { expected, found, unterminated } => write!(
                f,
                "expected at least {expected} NUL-terminated strings, found {found} and then {unterminated} bytes \
                 without a NUL"
            ),
            ShapeError::Trailing { offset, len } => {
                write!(f, "{len} bytes at offset {offset} after the last NUL-terminated string, where none may follow")
            }
            ShapeError::NulInReserved { offset } => {
                write!(f, "the reserved value at offset {offset} holds a NUL (one argument too many)")
            }
        }
    }
}

/// Splits a payload into the strings and tail `shape` says it holds, refusing any other layout:
/// a string without its NUL, too few or too many strings, bytes where none may follow.
pub fn split_request(payload: &[u8], shape: Shape) -> Result<Args<'_>, ShapeError> {
    let mut strings = Vec::new();
    let mut rest = payload;
    while shape.max.is_none_or(|max| strings.len() < max) {
        let Some(nul) = rest.iter().position(|b| *b == 0) else { break };
        strings.push(&rest[..nul]);
        rest = &rest[nul + 1..];
    }
    let offset = payload.len() - rest.len();
    if strings.len() < shape.min {
        return Err(ShapeError::Missing { expected: shape.min, found: strings.len(), unterminated: rest.len() });
    }
    match shape.tail {
        Tail::Nothing if !rest.is_empty() => Err(ShapeError::Trailing { offset, len: rest.len() }),
        Tail::Reserved if rest.contains(&0) => Err(ShapeError::NulInReserved { offset }),
        _ => Ok(Args { strings, tail: rest }),
    }
}

/// Why a path is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The empty path.
    Empty,
    /// Longer than [`ABS_PATH_MAX`] (absolute) or [`REL_PATH_MAX`] (relative).
    TooLong {
        /// The path's length.
        len: usize,
        /// The limit that applies.
        max: usize,
    },
    /// A character outside ASCII alphanumerics and `-/_@`.
    BadChar {
        /// Byte offset.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// `//` somewhere in the path.
    DoubleSlash,
    /// A trailing `/` (only the root may end with one).
    TrailingSlash,
    /// A special `@` name where a node path is required, or a malformed one.
    Special,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Empty => f.write_str("the empty path is not allowed"),
            PathError::TooLong { len, max } => write!(f, "{len} bytes long, the limit is {max}"),
            PathError::BadChar { offset, byte } => {
                write!(f, "byte {byte:#04x} at offset {offset} is not allowed (only ASCII letters, digits and -/_@)")
            }
            PathError::DoubleSlash => f.write_str("doubled slashes are not allowed"),
            PathError::TrailingSlash => f.write_str("a trailing slash is only allowed for the root `/`"),
            PathError::Special => f.write_str("`@` names are only valid as watch paths (`@introduceDomain`)"),
        }
    }
}

/// Checks a path as Xen's xenstored does: allowed characters `[A-Za-z0-9-/_@]`, no `//`, no
/// trailing `/` except for the root, length limits (absolute: [`ABS_PATH_MAX`], relative:
/// [`REL_PATH_MAX`]). `@name` is accepted only when `allow_special` (watch paths).
pub fn check_path(path: &[u8], allow_special: bool) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    let max = if path[0] == b'/' { ABS_PATH_MAX } else { REL_PATH_MAX };
    if path.len() > max {
        return Err(PathError::TooLong { len: path.len(), max });
    }
    if let Some(offset) = path.iter().position(|b| !(b.is_ascii_alphanumeric() || b"-/_@".contains(b))) {
        return Err(PathError::BadChar { offset, byte: path[offset] });
    }
    if path[0] == b'@' {
        return if allow_special && path.len() > 1 && !path.contains(&b'/') { Ok(()) } else { Err(PathError::Special) };
    }
    if path.windows(2).any(|w| w == b"//") {
        return Err(PathError::DoubleSlash);
    }
    if path.len() > 1 && path.ends_with(b"/") {
        return Err(PathError::TrailingSlash);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let header = Header { msg_type: 2, req_id: 0xdead_beef, tx_id: 7, len: 12 };
        assert_eq!(Header::decode(&header.encode()), header);
    }

    #[test]
    fn types_and_errors_round_trip() {
        for (t, v, _) in MsgType::TABLE {
            assert_eq!(MsgType::from_u32(v), Some(t));
            assert_eq!(t.as_u32(), v);
        }
        assert_eq!(MsgType::from_u32(27), None);
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("EWHATEVER"), None);
    }

    #[test]
    fn strings_split() {
        assert_eq!(split_strings(b"a\0bc\0"), vec![&b"a"[..], b"bc"]);
        assert_eq!(split_strings(b"a\0bc"), vec![&b"a"[..], b"bc"]);
        assert!(split_strings(b"").is_empty());
        assert_eq!(split_strings(b"\0"), vec![&b""[..]]);
    }

    #[test]
    fn requests_split_by_their_shape() {
        let one = Shape::strings(1);
        let strings = |payload, shape| split_request(payload, shape).map(|args| args.strings);
        assert_eq!(strings(b"/a\0", one), Ok(vec![&b"/a"[..]]));
        assert_eq!(strings(b"\0", one), Ok(vec![&b""[..]]));
        assert_eq!(split_request(b"/a", one), Err(ShapeError::Missing { expected: 1, found: 0, unterminated: 2 }));
        assert_eq!(split_request(b"", one), Err(ShapeError::Missing { expected: 1, found: 0, unterminated: 0 }));
        assert_eq!(split_request(b"/a\0b\0", one), Err(ShapeError::Trailing { offset: 3, len: 2 }));
        assert_eq!(split_request(b"/a\0b", one), Err(ShapeError::Trailing { offset: 3, len: 1 }));

        let write = MsgType::Write.request_shape().unwrap();
        let args = split_request(b"/a\0v\0w\0", write).unwrap();
        assert_eq!((args.strings, args.tail), (vec![&b"/a"[..]], &b"v\0w\0"[..]));
        assert_eq!(split_request(b"/a\0", write).unwrap().tail, b"");
        assert!(split_request(b"/a", write).is_err());

        let watch = MsgType::Watch.request_shape().unwrap();
        let args = split_request(b"/a\0tok\0", watch).unwrap();
        assert_eq!((args.strings, args.tail), (vec![&b"/a"[..], b"tok"], &b""[..]));
        assert_eq!(split_request(b"/a\0tok\0ext", watch).unwrap().tail, b"ext", "a reserved value");
        assert_eq!(split_request(b"/a\0tok\0x\0", watch), Err(ShapeError::NulInReserved { offset: 7 }));
        assert_eq!(
            split_request(b"/a\0tok", watch),
            Err(ShapeError::Missing { expected: 2, found: 1, unterminated: 3 })
        );

        let set_perms = MsgType::SetPerms.request_shape().unwrap();
        assert_eq!(strings(b"/a\0n0\0r1\0b2\0", set_perms), Ok(vec![&b"/a"[..], b"n0", b"r1", b"b2"]));
        assert_eq!(
            split_request(b"/a\0", set_perms),
            Err(ShapeError::Missing { expected: 2, found: 1, unterminated: 0 })
        );

        let directory_part = MsgType::DirectoryPart.request_shape().unwrap();
        assert_eq!(strings(b"/a\x0012\0", directory_part), Ok(vec![&b"/a"[..], b"12"]));
        assert!(split_request(b"/a\x0012", directory_part).is_err(), "the offset's NUL, as C xenstored wants it");

        for kind in [MsgType::Control, MsgType::WatchEvent, MsgType::Error, MsgType::Invalid] {
            assert_eq!(kind.request_shape(), None, "{kind}");
        }
        // Every refusal says what is wrong.
        let message = ShapeError::Missing { expected: 2, found: 1, unterminated: 3 }.to_string();
        assert_eq!(message, "expected at least 2 NUL-terminated strings, found 1 and then 3 bytes without a NUL");
    }

    #[test]
    fn paths() {
        assert_eq!(check_path(b"/", false), Ok(()));
        assert_eq!(check_path(b"/local/domain/0/data-x_y@z", false), Ok(()));
        assert_eq!(check_path(b"data/x", false), Ok(()));
        assert_eq!(check_path(b"", false), Err(PathError::Empty));
        assert_eq!(check_path(b"/a//b", false), Err(PathError::DoubleSlash));
        assert_eq!(check_path(b"/a/", false), Err(PathError::TrailingSlash));
        assert_eq!(check_path(b"/a.b", false), Err(PathError::BadChar { offset: 2, byte: b'.' }));
        assert_eq!(check_path(b"@releaseDomain", false), Err(PathError::Special));
        assert_eq!(check_path(b"@releaseDomain", true), Ok(()));
        let long = [b"/".as_slice(), &[b'a'; ABS_PATH_MAX]].concat();
        assert_eq!(check_path(&long, false), Err(PathError::TooLong { len: ABS_PATH_MAX + 1, max: ABS_PATH_MAX }));
        let rel = vec![b'a'; REL_PATH_MAX + 1];
        assert_eq!(check_path(&rel, false), Err(PathError::TooLong { len: REL_PATH_MAX + 1, max: REL_PATH_MAX }));
    }
}
