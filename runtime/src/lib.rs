//! vproto-runtime: JSON-RPC framing and transports, version negotiation, the Xenstore client,
//! the netlink collector and vchan. Empty until the JSON-RPC issue lands; it depends on vproto-api
//! so the data flow schema → generated → runtime is fixed from the start.
