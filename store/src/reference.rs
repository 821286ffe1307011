//! Image references parsed by Docker's rules, so `busybox` means what it means to a Docker user.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// The registry a reference without one points at.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The host that actually serves [`DEFAULT_REGISTRY`].
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

/// A fully qualified image reference: registry, repository, and a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host, with port if any (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path (`library/busybox`).
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// Pinned manifest digest (`name@sha256:…`).
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses `input` by Docker's rules (`busybox` → `docker.io/library/busybox:latest`).
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |reason: &str| Error::BadReference {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("empty reference"));
        }
        if input.len() > 512 {
            return Err(bad("longer than 512 characters"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(Digest::parse(d).map_err(|_| {
                    bad("digest must be sha256: followed by 64 lowercase hex digits")
                })?),
            ),
            None => (input, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(bad("tag must be 1-128 characters of letters, digits, '_', '.' or '-', not starting with '.' or '-'"));
            }
        }
        let (registry, mut repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        if !valid_registry(&registry) {
            return Err(bad(
                "registry must be a host name or address with an optional port",
            ));
        }
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        if repository.is_empty() {
            return Err(bad("missing repository name"));
        }
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("repository name must be lowercase"));
        }
        if !repository.split('/').all(valid_path_component) {
            return Err(bad("repository name components must be lowercase letters and digits separated by '.', '_', '__' or '-'"));
        }
        if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host to connect to: Docker Hub's name is an alias of its API host.
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DOCKER_HUB_HOST
        } else {
            &self.registry
        }
    }

    /// `registry/repository`, the name shown in the REPOSITORY column.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same image but pinned to `digest` (tag kept for display).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The short form Docker users type (`busybox:latest`), for messages.
    pub fn familiar(&self) -> String {
        let mut s = if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }

    /// Whether the registry is on this machine, where Docker allows plain HTTP.
    pub fn is_loopback_registry(&self) -> bool {
        is_loopback_host(&self.registry)
    }
}

/// True for `localhost`, 127.0.0.0/8 and `::1`, with or without a port.
pub fn is_loopback_host(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(registry)
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Reference::parse(s)
    }
}

fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_registry(reg: &str) -> bool {
    !reg.is_empty()
        && reg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        && !reg.starts_with(['.', '-', ':'])
}

fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'a'..=b'z' | b'0'..=b'9' => i += 1,
            b'.' | b'_' => {
                // one '.', one '_' or '__', then an alphanumeric
                let run = b[i..].iter().take_while(|&&x| x == b'_').count();
                let sep = if b[i] == b'.' { 1 } else { run };
                if sep > 2 || !b.get(i + sep).is_some_and(|x| x.is_ascii_alphanumeric()) {
                    return false;
                }
                i += sep;
            }
            b'-' => {
                let run = b[i..].iter().take_while(|&&x| x == b'-').count();
                if !b.get(i + run).is_some_and(|x| x.is_ascii_alphanumeric()) {
                    return false;
                }
                i += run;
            }
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        Reference::parse(s)
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn docker_hub_short_names() {
        assert_eq!(p("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(p("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(p("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            p("index.docker.io/library/alpine:3"),
            "docker.io/library/alpine:3"
        );
        assert_eq!(p("docker.io/alpine"), "docker.io/library/alpine:latest");
    }

    #[test]
    fn registries_are_recognised_by_dot_colon_or_localhost() {
        assert_eq!(p("127.0.0.1:5000/busybox"), "127.0.0.1:5000/busybox:latest");
        assert_eq!(p("localhost/x:y"), "localhost/x:y");
        assert_eq!(p("ghcr.io/org/sub/img:v1"), "ghcr.io/org/sub/img:v1");
        assert_eq!(p("quay.io/a/b"), "quay.io/a/b:latest");
        assert_eq!(p("myhost:5000/img"), "myhost:5000/img:latest");
        assert_eq!(p("notaregistry/img"), "docker.io/notaregistry/img:latest");
    }

    #[test]
    fn digests_pin_with_or_without_tag() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        assert_eq!(
            p(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            p(&format!("busybox:1@{d}")),
            format!("docker.io/library/busybox:1@{d}")
        );
        let r = Reference::parse(&format!("127.0.0.1:5000/x@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.unwrap().as_str(), d);
    }

    #[test]
    fn malformed_references_are_refused_with_a_reason() {
        assert!(p("").starts_with("ERR"));
        assert!(p("Busybox").contains("must be lowercase"));
        assert!(p("busybox:").contains("tag must be"));
        assert!(p("busybox:-x").contains("tag must be"));
        assert!(p("busybox@sha256:abc").contains("digest"));
        assert!(p("a//b").starts_with("ERR"));
        assert!(p("a/-b").starts_with("ERR"));
        assert!(p("a/b_").starts_with("ERR"));
        assert!(p("a/b___c").starts_with("ERR"));
        assert!(p("a b").starts_with("ERR"));
        assert!(p(&format!("x:{}", "a".repeat(129))).contains("tag must be"));
    }

    #[test]
    fn separators_follow_the_distribution_grammar() {
        assert_eq!(p("a/b__c.d-e--f"), "docker.io/a/b__c.d-e--f:latest");
        assert!(p("a/b..c").starts_with("ERR"));
    }

    #[test]
    fn familiar_form_and_loopback() {
        assert_eq!(
            Reference::parse("busybox").unwrap().familiar(),
            "busybox:latest"
        );
        assert_eq!(
            Reference::parse("docker.io/user/app:1").unwrap().familiar(),
            "user/app:1"
        );
        assert!(Reference::parse("127.0.0.1:5000/a")
            .unwrap()
            .is_loopback_registry());
        assert!(Reference::parse("127.1.2.3/a")
            .unwrap()
            .is_loopback_registry());
        assert!(Reference::parse("localhost:5000/a")
            .unwrap()
            .is_loopback_registry());
        assert!(Reference::parse("[::1]:5000/a")
            .unwrap()
            .is_loopback_registry());
        assert!(!Reference::parse("10.0.0.1:5000/a")
            .unwrap()
            .is_loopback_registry());
        assert!(!Reference::parse("busybox").unwrap().is_loopback_registry());
        assert_eq!(
            Reference::parse("busybox").unwrap().api_host(),
            "registry-1.docker.io"
        );
    }
}
