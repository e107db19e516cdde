//! vproto-services: reference implementations (Cyborg driver/agent/conductor, host-info
//! negotiation, guest agent). Empty until the JSON-RPC issue lands.
