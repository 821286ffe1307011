//! The ground floor: facts read from /proc, terminal handling and handed-down fds. Imported by
//! the rest of the runtime, importing none of it.

pub mod fd;
pub mod procfs;
pub mod tty;
