//! Attacks on skiff's defences (issue: hardening): each test tries an escape, an exposure or a resource
//! bomb that a hostile image, a hostile container process or another local user could try, and asserts
//! that skiff stops it. One test binary, one module per concern.

#[path = "../common/mod.rs"]
mod common;

mod confine;
mod image;
mod join;
mod records;
