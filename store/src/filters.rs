//! `images REPO[:TAG]` and `images --filter` (dangling, reference, before, since, label): which
//! local images a listing keeps, as Docker decides it.

use crate::error::{Error, Result};
use crate::images::{ImageStore, LocalImage};
use crate::reference::Reference;

/// One `--filter KEY=VALUE` of `images`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageFilter {
    /// `dangling=true|false`: images with no name. skiff drops an image's entry when its last
    /// name goes, so none is ever listed as dangling.
    Dangling(bool),
    /// `reference=PATTERN`: `*` globs over the name, or over `name:tag` when a tag is given.
    Reference(String),
    /// `before=IMAGE`: created before that image.
    Before(String),
    /// `since=IMAGE`: created after that image.
    Since(String),
    /// `label=KEY` or `label=KEY=VALUE`, from the image config.
    Label(String, Option<String>),
}

fn bad(input: &str, reason: &str) -> Error {
    Error::BadFilter {
        input: input.to_string(),
        reason: reason.to_string(),
    }
}

impl ImageFilter {
    /// Parses `KEY=VALUE`, naming the keys there are when the key is unknown.
    pub fn parse(s: &str) -> Result<ImageFilter> {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| bad(s, "give KEY=VALUE, e.g. --filter dangling=true"))?;
        Ok(match k {
            "dangling" => match v {
                "true" | "1" => ImageFilter::Dangling(true),
                "false" | "0" => ImageFilter::Dangling(false),
                _ => return Err(bad(s, "dangling takes true or false")),
            },
            "reference" => ImageFilter::Reference(v.to_string()),
            "before" => ImageFilter::Before(v.to_string()),
            "since" => ImageFilter::Since(v.to_string()),
            "label" => match v.split_once('=') {
                Some((k, v)) => ImageFilter::Label(k.to_string(), Some(v.to_string())),
                None => ImageFilter::Label(v.to_string(), None),
            },
            _ => {
                return Err(bad(
                    s,
                    "the image filters are dangling, reference, before, since and label",
                ))
            }
        })
    }
}

/// `*` matches any run of characters (Docker's reference patterns, `/` included here).
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| glob(rest, &tail[i..]))
        }
    }
}

/// The names an image's repository goes by: as stored, and the short Docker Hub forms.
fn repo_names(repo: &str) -> Vec<String> {
    let mut v = vec![repo.to_string()];
    if let Some(r) = repo.strip_prefix("docker.io/") {
        v.push(r.to_string());
        if let Some(r) = r.strip_prefix("library/") {
            v.push(r.to_string());
        }
    }
    v
}

/// Whether `pattern` (a reference filter) matches the image.
fn reference_matches(pattern: &str, img: &LocalImage) -> bool {
    let tagged = pattern
        .rsplit_once('/')
        .map_or(pattern, |(_, last)| last)
        .contains(':');
    repo_names(&img.repository).iter().any(|name| {
        if tagged {
            img.tag
                .as_deref()
                .is_some_and(|t| glob(pattern, &format!("{name}:{t}")))
        } else {
            glob(pattern, name)
        }
    })
}

impl ImageStore {
    /// The images `images [REPO[:TAG]] [--filter …]` lists: `repo` names a repository (every
    /// tag) or one `name:tag`; every filter must hold (Docker's rule across keys).
    pub fn list_matching(
        &self,
        repo: Option<&str>,
        filters: &[ImageFilter],
    ) -> Result<Vec<LocalImage>> {
        let all = self.list()?;
        let created = |name: &str| -> Result<Option<chrono::DateTime<chrono::FixedOffset>>> {
            let hits = self.find(name)?;
            Ok(hits
                .first()
                .and_then(|i| i.created.as_deref())
                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()))
        };
        let repo = match repo {
            Some(r) => {
                let parsed = Reference::parse(r)?;
                let tagged = r.rsplit_once('/').map_or(r, |(_, l)| l).contains(':');
                Some((parsed, tagged))
            }
            None => None,
        };
        let mut out = Vec::new();
        'images: for img in all {
            if let Some((r, tagged)) = &repo {
                let hit = if *tagged {
                    img.reference == r.to_string()
                } else {
                    img.repository == r.name()
                };
                if !hit {
                    continue;
                }
            }
            let when = img
                .created
                .as_deref()
                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok());
            for f in filters {
                let keep = match f {
                    ImageFilter::Dangling(d) => !*d,
                    ImageFilter::Reference(p) => reference_matches(p, &img),
                    ImageFilter::Before(name) => match (when, created(name)?) {
                        (Some(a), Some(b)) => a < b,
                        _ => false,
                    },
                    ImageFilter::Since(name) => match (when, created(name)?) {
                        (Some(a), Some(b)) => a > b,
                        _ => false,
                    },
                    ImageFilter::Label(k, v) => {
                        let config = self.image_config(&img)?;
                        let got = config["config"]["Labels"][k.as_str()].as_str();
                        match v {
                            Some(v) => got == Some(v.as_str()),
                            None => got.is_some(),
                        }
                    }
                };
                if !keep {
                    continue 'images;
                }
            }
            out.push(img);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_filters_parse() {
        assert!(glob("busy*", "busybox"));
        assert!(glob("*/busybox:*", "127.0.0.1:5000/busybox:latest"));
        assert!(!glob("busy*", "alpine"));
        assert_eq!(
            ImageFilter::parse("label=a=b").unwrap(),
            ImageFilter::Label("a".into(), Some("b".into()))
        );
        assert_eq!(
            ImageFilter::parse("dangling=true").unwrap(),
            ImageFilter::Dangling(true)
        );
        assert!(ImageFilter::parse("colour=red").is_err());
        assert!(ImageFilter::parse("dangling").is_err());
    }
}
