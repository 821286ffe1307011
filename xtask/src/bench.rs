//! `cargo xtask bench pull`.
use anyhow::Result;
pub fn pull() -> Result<()> {
    Ok(())
}
