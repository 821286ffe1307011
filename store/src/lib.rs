//! skiff's image store: references, the registry client, the content-addressed OCI layout, safe
//! layer unpacking and garbage collection. It knows nothing of containers; the runtime asks it for
//! the layer directories of an image.

pub mod archive;
pub mod artifact;
pub mod auth;
pub mod changes;
pub mod commit;
pub mod config;
pub mod digest;
pub mod error;
pub mod filters;
pub mod fsutil;
pub mod images;
pub mod inroot;
pub mod json;
pub mod layers;
pub mod layout;
pub mod paths;
pub mod platform;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod size;
pub mod unpack;

pub use artifact::PulledWasm;
pub use digest::Digest;
pub use error::{Error, Result};
pub use images::{HistoryEntry, ImageStore, LocalImage};
pub use layers::{InProcessUnpacker, LayerUnpacker};
pub use paths::Dirs;
pub use platform::Platform;
pub use pull::{NoProgress, Progress, PullOptions};
pub use reference::Reference;
