//! Black-box tests of the real `skiff` binary live in `tests/`; this crate has no library code.
