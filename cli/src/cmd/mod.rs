//! One file per command family; each parses its flags into runtime and store types, calls them,
//! and prints the result. They share code only through `ctx` and `output`, never each other.

pub mod attach;
pub mod commit;
pub mod cp;
pub mod diff;
pub mod events;
pub mod exec;
pub mod export;
pub mod health;
pub mod helpers;
pub mod history;
pub mod image;
pub mod import;
pub mod info;
pub mod inspect;
pub mod lifecycle;
pub mod logs;
pub mod network;
pub mod plugin;
pub mod ps;
pub mod run;
pub mod stats;
pub mod system;
pub mod update;
pub mod volume;
