//! vproto's protocol with HostInfo 1.1, generated at build time by `build.rs`
//! through `vproto_codegen::Generator`: the worked example of using the
//! generator from another crate, and the newer peer in negotiation tests.

include!(concat!(env!("OUT_DIR"), "/protocol.rs"));
