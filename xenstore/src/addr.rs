//! [`XenstoreAddr`]: where a Xenstore is reached.

use std::{
    ffi::OsString,
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
};

use super::XsError;

/// The xenbus device of a guest kernel.
pub const XENBUS_DEVICE: &str = "/dev/xen/xenbus";
/// The default run directory of xenstored.
pub const DEFAULT_RUNDIR: &str = "/var/run/xenstored";

/// Where a Xenstore is reached: dom0's Unix socket, or a guest's xenbus device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XenstoreAddr {
    /// `unix:PATH`: xenstored's Unix socket (dom0, or the embedded server).
    Unix(PathBuf),
    /// `xenbus` (`/dev/xen/xenbus`) or `xenbus:PATH`: the guest kernel's xenbus device.
    Xenbus(PathBuf),
}

impl XenstoreAddr {
    /// The socket libxenstore would use: `$XENSTORED_PATH`, else `$XENSTORED_RUNDIR/socket`, else
    /// `/var/run/xenstored/socket`.
    pub fn from_env() -> XenstoreAddr {
        Self::from_vars(std::env::var_os("XENSTORED_PATH"), std::env::var_os("XENSTORED_RUNDIR"))
    }

    /// Where libxenstore's `xs_open` ends up: `$XENSTORED_PATH` when set; else xenstored's
    /// socket ([`XenstoreAddr::from_env`]) when it exists, as in dom0; else the xenbus device
    /// when it exists, as in a guest; else the socket, so that the error names it.
    pub fn discover() -> XenstoreAddr {
        let socket = Self::from_env();
        let explicit = std::env::var_os("XENSTORED_PATH").is_some_and(|path| !path.is_empty());
        if explicit || socket.path().exists() || !Path::new(XENBUS_DEVICE).exists() {
            return socket;
        }
        XenstoreAddr::Xenbus(PathBuf::from(XENBUS_DEVICE))
    }

    /// [`XenstoreAddr::from_env`] over explicit values (empty values count as unset).
    pub fn from_vars(path: Option<OsString>, rundir: Option<OsString>) -> XenstoreAddr {
        let non_empty = |v: Option<OsString>| v.filter(|v| !v.is_empty());
        if let Some(path) = non_empty(path) {
            return XenstoreAddr::Unix(PathBuf::from(path));
        }
        let rundir = non_empty(rundir).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_RUNDIR));
        XenstoreAddr::Unix(rundir.join("socket"))
    }

    /// The socket or device path.
    pub fn path(&self) -> &Path {
        match self {
            XenstoreAddr::Unix(path) | XenstoreAddr::Xenbus(path) => path,
        }
    }
}

impl FromStr for XenstoreAddr {
    type Err = XsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| XsError::InvalidAddr { addr: s.to_string(), reason: reason.to_string() };
        if s == "xenbus" {
            return Ok(XenstoreAddr::Xenbus(PathBuf::from(XENBUS_DEVICE)));
        }
        if let Some(path) = s.strip_prefix("xenbus:") {
            if path.is_empty() {
                return Err(invalid("`xenbus:` needs a device path, or write `xenbus` for /dev/xen/xenbus"));
            }
            return Ok(XenstoreAddr::Xenbus(PathBuf::from(path)));
        }
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(invalid("`unix:` needs a socket path, e.g. unix:/var/run/xenstored/socket"));
            }
            return Ok(XenstoreAddr::Unix(PathBuf::from(path)));
        }
        Err(invalid("expected `unix:PATH`, `xenbus` or `xenbus:PATH`"))
    }
}

impl fmt::Display for XenstoreAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenstoreAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            XenstoreAddr::Xenbus(path) if path == Path::new(XENBUS_DEVICE) => f.write_str("xenbus"),
            XenstoreAddr::Xenbus(path) => write!(f, "xenbus:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        for text in ["unix:/tmp/xs.sock", "xenbus", "xenbus:/dev/xen/other"] {
            let addr: XenstoreAddr = text.parse().unwrap();
            assert_eq!(addr.to_string(), text);
        }
        assert_eq!("xenbus".parse::<XenstoreAddr>().unwrap(), XenstoreAddr::Xenbus(XENBUS_DEVICE.into()));
        for bad in ["", "unix:", "tcp:1.2.3.4:5", "/tmp/sock", "xenbus:"] {
            assert!(matches!(bad.parse::<XenstoreAddr>(), Err(XsError::InvalidAddr { .. })), "{bad}");
        }
    }

    #[test]
    fn environment_order() {
        let unix = |p: &str| XenstoreAddr::Unix(PathBuf::from(p));
        assert_eq!(XenstoreAddr::from_vars(Some("/a".into()), Some("/r".into())), unix("/a"));
        assert_eq!(XenstoreAddr::from_vars(None, Some("/r".into())), unix("/r/socket"));
        assert_eq!(XenstoreAddr::from_vars(Some("".into()), None), unix("/var/run/xenstored/socket"));
    }
}
