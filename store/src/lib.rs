//! skiff's image store: references, the registry client, the content-addressed OCI layout, safe
//! layer unpacking and garbage collection. It knows nothing of containers; the runtime asks it for
//! the layer directories of an image.

pub mod digest;
pub mod error;
pub mod fsutil;
pub mod layout;
pub mod paths;
pub mod reference;
pub mod unpack;

pub use digest::Digest;
pub use error::{Error, Result};
pub use paths::Dirs;
pub use reference::Reference;
