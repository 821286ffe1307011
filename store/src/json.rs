//! Parsing JSON documents of the store (manifests, configs, index.json) with errors that name them.

use crate::error::{Error, Result};

/// Parses a JSON document, naming `what` in the error.
pub(crate) fn parse_json(bytes: &[u8], what: &str) -> Result<serde_json::Value> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        context: format!("parsing {what}"),
        source,
    })
}
