//! The simulation backend (filled in next).
