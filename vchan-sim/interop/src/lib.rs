//! Tests only: `tests/libxenvchan.rs` runs a C program linked against Debian's real
//! libxenvchan (`tests/vchan_pair.c`) as server and client on the simulation's drop-in
//! `libxengnttab.so.1` and `libxenevtchn.so.1`, with vproto's xenstored as the rendezvous.
