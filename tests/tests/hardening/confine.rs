//! Confinement: devices, capabilities, seccomp and mount flags compared with podman's defaults.

#[allow(unused_imports)]
use super::common;
