//! Bearer tokens: only their sha256 is kept, and a presented token's hash is
//! compared with every known hash in constant time (no early exit, no
//! lookup keyed by the secret), so neither the time taken nor the order of
//! the tenants tells anything about a token.

use sha2::{Digest, Sha256};

/// The sha256 of a token, as the configuration stores it.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two hashes are equal, in time independent of where they differ.
pub fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The token of an `Authorization: Bearer TOKEN` header value.
pub fn bearer(header: Option<&http::HeaderValue>) -> Option<&str> {
    let value = header?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The index of the hash `token` matches, looking at every hash.
pub fn find(token: &str, hashes: impl IntoIterator<Item = [u8; 32]>) -> Option<usize> {
    let presented = token_hash(token);
    let mut found = None;
    for (i, hash) in hashes.into_iter().enumerate() {
        if same(&presented, &hash) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_their_own_hash() {
        let hashes = [token_hash("alpha"), token_hash("beta")];
        assert_eq!(find("beta", hashes), Some(1));
        assert_eq!(find("alpha", hashes), Some(0));
        assert_eq!(find("gamma", hashes), None);
        assert_eq!(find("", hashes), None);
        let header = |v: &str| http::HeaderValue::from_str(v).expect("header");
        assert_eq!(bearer(Some(&header("Bearer abc"))), Some("abc"));
        assert_eq!(bearer(Some(&header("bearer  abc "))), Some("abc"));
        assert_eq!(bearer(Some(&header("Basic abc"))), None);
        assert_eq!(bearer(Some(&header("Bearer "))), None);
        assert_eq!(bearer(None), None);
    }
}
