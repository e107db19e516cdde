//! [`Permission`]: one entry of a node's access list, in Xenstore's `<letter><domid>` form.
//!
//! The first entry of a list names the node's owner (who always has full access) and the access
//! of every domain not listed; later entries grant specific domains.

use std::{fmt, str::FromStr};

use super::XsError;

/// The largest domain id (`domid_t` is 16 bits).
pub const DOMID_MAX: u32 = 0xffff;

/// What a domain may do with a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: no access.
    None,
    /// `r`: read only.
    Read,
    /// `w`: write only.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The letter used on the wire.
    pub fn letter(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }

    /// Whether this grants reading.
    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// Whether this grants writing.
    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One access-list entry: a domain and its access (`r1`, `b0`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Permission {
    /// The domain (0..=65535).
    pub domid: u32,
    /// Its access.
    pub access: Access,
}

impl Permission {
    /// A permission entry.
    pub fn new(domid: u32, access: Access) -> Permission {
        Permission { domid, access }
    }

    /// Parses a whole access list, refusing an empty one.
    pub fn parse_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Vec<Permission>, XsError> {
        let perms = items.into_iter().map(str::parse).collect::<Result<Vec<Permission>, _>>()?;
        if perms.is_empty() {
            return Err(XsError::InvalidArgument("an access list needs at least the owner entry".into()));
        }
        Ok(perms)
    }
}

impl FromStr for Permission {
    type Err = XsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid =
            |why: &str| XsError::InvalidArgument(format!("permission {s:?}: {why}; expected n|r|w|b then a domid"));
        let mut chars = s.chars();
        let access = match chars.next() {
            Some('n') => Access::None,
            Some('r') => Access::Read,
            Some('w') => Access::Write,
            Some('b') => Access::Both,
            Some(_) => return Err(invalid("unknown access letter")),
            None => return Err(invalid("empty")),
        };
        let digits = chars.as_str();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the domid must be decimal digits"));
        }
        match digits.parse::<u32>() {
            Ok(domid) if domid <= DOMID_MAX => Ok(Permission { domid, access }),
            _ => Err(invalid("the domid must be at most 65535")),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter(), self.domid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        for text in ["n0", "r1", "w2", "b3", "b65535"] {
            assert_eq!(text.parse::<Permission>().unwrap().to_string(), text);
        }
        for bad in ["", "x1", "r", "r-1", "r65536", "r1a", "R1", "r 1"] {
            assert!(bad.parse::<Permission>().is_err(), "{bad}");
        }
        assert!(Permission::parse_list([]).is_err());
        assert_eq!(Permission::parse_list(["n0", "r5"]).unwrap().len(), 2);
    }
}
