//! The ground floor: facts read from /proc and terminal handling. Imported by the rest of the
//! runtime, importing none of it.

pub mod procfs;
pub mod tty;
