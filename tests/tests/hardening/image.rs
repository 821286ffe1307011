//! Image content on the host: symlinks, non-regular files, forged overlay xattrs, sparse bombs and lying sizes.

#[allow(unused_imports)]
use super::common;
