//! The container's root filesystem: the overlay of the shared layer dirs (or the private copy
//! where the kernel refuses it), /proc, /sys, /dev, the user's mounts, masks and pivot_root.

pub mod copyroot;
pub mod mounts;
pub mod volinit;
