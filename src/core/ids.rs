//! Unguessable names and keys: peer/invitation resources and handshake keys.
//!
//! Both carry at least 128 bits from the OS-seeded CSPRNG, so a third party cannot
//! guess a seat or a key (DEVELOPERS.md "Security by default"). Keys are compared in
//! constant time so a wrong guess leaks nothing through timing.

use rand::{distributions::Alphanumeric, Rng};

/// Random hex characters in a resource (32 × 4 = 128 bits).
pub const RESOURCE_LEN: usize = 32;
/// Alphanumeric characters in a handshake key (32 × ~5.95 ≈ 190 bits).
pub const KEY_LEN: usize = 32;

/// A new random resource: 32 lowercase hex digits.
pub fn new_resource() -> String {
    let bytes: [u8; RESOURCE_LEN / 2] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new single-use handshake key: 32 alphanumeric characters.
pub fn new_key() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(KEY_LEN)
        .map(char::from)
        .collect()
}

/// Compares a presented key with the expected one in constant time.
pub fn keys_match(expected: &str, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    // Lengths are public (all our keys have KEY_LEN); only the contents are secret.
    expected.len() == presented.len() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_and_keys_are_long_and_distinct() {
        let (a, b) = (new_resource(), new_resource());
        assert_eq!(a.len(), RESOURCE_LEN);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        let k = new_key();
        assert_eq!(k.len(), KEY_LEN);
        assert!(k.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(k, new_key());
    }

    #[test]
    fn key_comparison() {
        assert!(keys_match("abc", "abc"));
        assert!(!keys_match("abc", "abd"));
        assert!(!keys_match("abc", "ab"));
        assert!(!keys_match("abc", ""));
    }
}
