//! vproto-conformance: the conformance suite generated from the schema and its runner.
//! Empty until the conformance issue lands.
