//! Platforms (`linux/amd64`, `linux/arm/v7`) and choosing one from a multi-arch index.

use std::fmt;

use crate::error::{Error, Result};

/// An OCI platform as `--platform` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// GOARCH spelling: `amd64`, `arm64`, `arm`, …
    pub architecture: String,
    /// `v7`, `v8`, … where it matters.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the machine skiff runs on.
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "riscv64" => ("riscv64", None),
            "s390x" => ("s390x", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || Error::BadReference {
            input: s.to_string(),
            reason: "platform must be os/arch[/variant], e.g. linux/arm64".into(),
        };
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        Ok(Platform {
            os: parts[0].into(),
            architecture: parts[1].into(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }

    /// Whether an index entry's `platform` object is this platform. A missing variant matches the
    /// architecture's default (arm64 ↔ v8, arm ↔ v7), as containerd does.
    pub fn matches(&self, p: &serde_json::Value) -> bool {
        let os = p["os"].as_str().unwrap_or("");
        let arch = p["architecture"].as_str().unwrap_or("");
        if os != self.os || arch != self.architecture {
            return false;
        }
        let default = match arch {
            "arm64" => Some("v8"),
            "arm" => Some("v7"),
            _ => None,
        };
        let theirs = p["variant"].as_str().or(default);
        let ours = self.variant.as_deref().or(default);
        theirs == ours || (self.variant.is_none() && default.is_none())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Describes an index entry's platform for error messages.
pub fn describe(p: &serde_json::Value) -> String {
    let mut s = format!(
        "{}/{}",
        p["os"].as_str().unwrap_or("?"),
        p["architecture"].as_str().unwrap_or("?")
    );
    if let Some(v) = p["variant"].as_str() {
        s.push('/');
        s.push_str(v);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn variants_default_like_containerd() {
        let arm64 = Platform::parse("linux/arm64").unwrap();
        assert!(arm64.matches(&json!({"os":"linux","architecture":"arm64"})));
        assert!(arm64.matches(&json!({"os":"linux","architecture":"arm64","variant":"v8"})));
        let v6 = Platform::parse("linux/arm/v6").unwrap();
        assert!(!v6.matches(&json!({"os":"linux","architecture":"arm","variant":"v7"})));
        assert!(v6.matches(&json!({"os":"linux","architecture":"arm","variant":"v6"})));
        let arm = Platform::parse("linux/arm").unwrap();
        assert!(arm.matches(&json!({"os":"linux","architecture":"arm"})));
        assert!(!arm.matches(&json!({"os":"linux","architecture":"arm","variant":"v6"})));
        let amd = Platform::parse("linux/amd64").unwrap();
        assert!(!amd.matches(&json!({"os":"windows","architecture":"amd64"})));
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//x").is_err());
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().to_string(),
            "linux/arm/v7"
        );
    }
}
