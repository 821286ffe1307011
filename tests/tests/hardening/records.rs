//! The store and container records against other local users, deep trees and damage.

#[allow(unused_imports)]
use super::common;
