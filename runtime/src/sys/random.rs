//! Random bytes from the kernel, and the 64-hex-digit ids containers and networks get from them.

use std::io::Read;

/// `N` random bytes from /dev/urandom.
pub fn bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b)
}

/// A new id as Docker's: 32 random bytes in lower-case hex.
pub fn id() -> std::io::Result<String> {
    Ok(bytes::<32>()?.iter().map(|x| format!("{x:02x}")).collect())
}
