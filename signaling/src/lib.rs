//! Capstan's signaling: the JSON wire protocol, I/O-free session logic (SDP checks,
//! subscribe-side negotiation) and the call UI served by the server.

pub mod negotiation;
pub mod protocol;
pub mod sdp;
pub mod web;
