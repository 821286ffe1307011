//! Moving files into and out of containers: `cp` both ways and a container's changes as a layer
//! for `commit`.

pub mod commit;
pub mod copy;
