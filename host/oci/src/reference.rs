//! `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX]`, checked as the OCI
//! distribution specification spells its names.

use std::fmt;

use crate::error::{OciError, Result};

/// A bundle's place in a registry: a tag, a digest, or both (the digest
/// decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `HOST` or `HOST:PORT`.
    pub registry: String,
    /// The repository path, lower case.
    pub repository: String,
    /// The tag, when one was named.
    pub tag: Option<String>,
    /// `sha256:HEX`, when one was named or resolved.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX]`; without a
    /// tag or digest the tag is `latest`.
    pub fn parse(text: &str) -> Result<Reference> {
        let bad = |reason: &str| OciError::Reference {
            reference: text.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = text
            .strip_prefix("oci://")
            .ok_or_else(|| bad("it does not start with oci://"))?;
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("it names no repository after the registry host"))?;
        if !valid_registry(registry) {
            return Err(bad("the registry host is not HOST or HOST:PORT"));
        }
        let (path, digest) = match path.split_once('@') {
            Some((path, digest)) => {
                if !valid_digest(digest) {
                    return Err(bad(
                        "the digest is not sha256: and 64 lower-case hex digits",
                    ));
                }
                (path, Some(digest.to_owned()))
            }
            None => (path, None),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) => {
                if !valid_tag(tag) {
                    return Err(bad(
                        "the tag is not 1-128 of A-Z a-z 0-9 _ . - (not starting with . or -)",
                    ));
                }
                (repository, Some(tag.to_owned()))
            }
            None => (path, None),
        };
        if !valid_repository(repository) {
            return Err(bad(
                "the repository is not lower-case a-z 0-9 components separated by / . _ -",
            ));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            _ => tag,
        };
        Ok(Reference {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// The same repository at `digest` (the tag is kept for display).
    pub fn at(&self, digest: &str) -> Reference {
        Reference {
            digest: Some(digest.to_owned()),
            ..self.clone()
        }
    }

    /// The form to journal: `oci://HOST/REPO@sha256:HEX`, exactly the bytes
    /// run, whatever the tag now points to.
    pub fn pinned(&self) -> Option<String> {
        let digest = self.digest.as_ref()?;
        Some(format!(
            "oci://{}/{}@{digest}",
            self.registry, self.repository
        ))
    }

    /// Whether the registry is on this machine (plain HTTP is used only
    /// for these, as Docker does).
    pub fn is_loopback(&self) -> bool {
        let host = split_port(&self.registry).0;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    pub(crate) fn client_reference(&self) -> oci_client::Reference {
        let (registry, repository) = (self.registry.clone(), self.repository.clone());
        match (&self.digest, &self.tag) {
            (Some(digest), _) => {
                oci_client::Reference::with_digest(registry, repository, digest.clone())
            }
            (None, Some(tag)) => oci_client::Reference::with_tag(registry, repository, tag.clone()),
            (None, None) => unreachable!("invariant: a parsed reference has a tag or a digest"),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `sha256:` and 64 lower-case hex digits.
pub(crate) fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// `HOST[:PORT]` split at the port's colon (not one inside `[IPv6]`).
fn split_port(registry: &str) -> (&str, Option<&str>) {
    match registry.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (registry, None),
    }
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = split_port(registry);
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ip) => ip.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host.split('.').all(|label| {
                    (1..=63).contains(&label.len())
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                })
        }
    };
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

fn valid_tag(tag: &str) -> bool {
    (1..=128).contains(&tag.len())
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn valid_repository(repository: &str) -> bool {
    !repository.is_empty()
        && repository.len() <= 255
        && repository.split('/').all(|component| {
            !component.is_empty()
                && component.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && component.starts_with(|c: char| c.is_ascii_alphanumeric())
                && component.ends_with(|c: char| c.is_ascii_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_tags_digests_and_ports() {
        let r = Reference::parse("oci://127.0.0.1:5000/acme/hello:1.2.0").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "acme/hello");
        assert_eq!(r.tag.as_deref(), Some("1.2.0"));
        assert!(r.digest.is_none() && r.is_loopback());
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/acme/hello:1.2.0");

        let r = Reference::parse(&format!("oci://ghcr.io/acme/hello@{DIGEST}")).unwrap();
        assert_eq!((r.tag, r.digest.as_deref()), (None, Some(DIGEST)));
        assert!(!Reference::parse("oci://ghcr.io/a:1").unwrap().is_loopback());

        let r = Reference::parse("oci://localhost/hello").unwrap();
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert!(r.is_loopback());
        assert!(
            Reference::parse("oci://[::1]:5000/hello:v1")
                .unwrap()
                .is_loopback()
        );

        let pinned = Reference::parse("oci://h.io/a:v1").unwrap().at(DIGEST);
        assert_eq!(pinned.pinned().unwrap(), format!("oci://h.io/a@{DIGEST}"));
    }

    #[test]
    fn refuses_what_is_not_a_reference() {
        for bad in [
            "https://h.io/a:1",
            "oci://h.io",
            "oci:///a:1",
            "oci://h.io/A:1",
            "oci://h.io/a/../b:1",
            "oci://h.io/a:",
            "oci://h.io/a:-x",
            "oci://h.io/a@sha256:abc",
            "oci://h.io/a@sha512:0123",
            &format!("oci://h.io/a@{}", DIGEST.to_uppercase()),
            "oci://h.io:99999/a:1",
            "oci://h_io/a:1",
            "oci://[zz]:1/a:1",
        ] {
            let e = Reference::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
