//! Where the test services live: the registries' addresses and credentials, and the state dir
//! with the test CA. Shared by `testenv` (which starts them) and `fixtures` (which fills them).

use std::path::PathBuf;

/// The registry address every test uses.
pub const REGISTRY: &str = "127.0.0.1:5000";
/// A non-loopback name for 127.0.0.1 (via /etc/hosts), so HTTPS is required as for a real registry.
pub const SECURE_HOST: &str = "registry.skiff.test";
/// The TLS + htpasswd registry, `SECURE_HOST:5443`.
pub const SECURE_REGISTRY: &str = "registry.skiff.test:5443";
/// The credentials it accepts.
pub const SECURE_USER: (&str, &str) = ("skiff", "skiff-secret");

/// Where the environment keeps its registry storage, config, pid and log.
pub fn state_dir() -> PathBuf {
    PathBuf::from("/tmp/skiff-testenv")
}

/// The directory holding only the test CA's certificate (`ca.crt`).
pub fn ca_dir() -> PathBuf {
    state_dir().join("ca")
}
