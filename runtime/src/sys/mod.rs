//! The ground floor: facts read from /proc, terminal handling, handed-down fds and random ids.
//! Imported by the rest of the runtime, importing none of it.

pub mod fd;
pub mod procfs;
pub mod random;
pub mod tty;
