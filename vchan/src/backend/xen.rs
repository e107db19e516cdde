//! The Xen backend (filled in next).
