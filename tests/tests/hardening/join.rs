//! Processes that join a container (exec, cp, top, stats) cannot be turned against the host binary or terminal.

#[allow(unused_imports)]
use super::common;
