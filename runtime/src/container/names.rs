//! Readable generated container names (`brave_turing`), as Docker users expect.

const ADJECTIVES: &[&str] = &[
    "agile", "bold", "brave", "calm", "clever", "eager", "fancy", "gentle", "happy", "jolly",
    "keen", "kind", "lucid", "merry", "nimble", "proud", "quiet", "quick", "sharp", "silly",
    "steady", "sunny", "swift", "tender", "vivid", "witty", "zealous", "zen", "amazing", "busy",
];
const NAMES: &[&str] = &[
    "babbage",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "fermi",
    "gauss",
    "hopper",
    "hypatia",
    "kepler",
    "knuth",
    "lamport",
    "liskov",
    "lovelace",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
    "yonath",
    "galileo",
    "ramanujan",
    "tesla",
    "bohr",
];

/// A name from random bytes; the caller retries on a clash (and appends digits after a few).
pub fn generate(random: &[u8; 4], attempt: u32) -> String {
    let a = ADJECTIVES[usize::from(random[0]) % ADJECTIVES.len()];
    let n = NAMES[usize::from(random[1]) % NAMES.len()];
    if attempt < 3 {
        format!("{a}_{n}")
    } else {
        format!(
            "{a}_{n}{}",
            u16::from_le_bytes([random[2], random[3]]) % 1000
        )
    }
}

/// Docker's rule for user-given names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn valid(name: &str) -> bool {
    let mut c = name.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '.' | '-'))
}

/// A host name for /etc/hosts or `--hostname`: letters, digits, '-' and '.', at most 63.
pub fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 63
        && h.chars()
            .all(|x| x.is_ascii_alphanumeric() || x == '-' || x == '.')
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_look_like_docker_names() {
        assert_eq!(super::generate(&[2, 23, 0, 0], 0), "brave_turing");
        assert!(super::generate(&[2, 23, 7, 0], 5).starts_with("brave_turing"));
        assert!(
            super::valid("web-1.a_b")
                && !super::valid("-x")
                && !super::valid("a b")
                && !super::valid("")
        );
    }
}
