//! Processes inside a container: its first process (`init`), processes that join it (`exec`),
//! and the terminals made inside it and relayed to the user (`console`).

pub mod console;
pub mod exec;
pub mod init;
