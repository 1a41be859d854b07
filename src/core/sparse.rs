//! Hash maps that give their room back once mostly empty.
//!
//! A `HashMap` keeps the capacity of its fullest moment: a relay that once held
//! 10 000 peers would keep every per-peer table sized for 10 000 after they left
//! (about 1 MB per 1 000 former peers over the service's maps, measured with
//! heaptrack). Each owner calls [`ShrinkWhenSparse::shrink_when_sparse`] where it
//! removes entries; a map shrinks to twice what it holds once it is at most a
//! quarter full, so a map whose size swings back and forth does not rehash on
//! every change. (`capacity` leaves out the slots removals left marked as used;
//! a map full of those reports little room and shrinks after its next insert,
//! which clears them.)

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash};

/// Capacity a map may always keep: small maps are not worth rehashing.
pub const KEPT: usize = 64;

/// A collection that can hand back room it no longer needs.
pub trait ShrinkWhenSparse {
    /// Shrinks to twice the length once the length is at most a quarter of the
    /// capacity (and the capacity above [`KEPT`]).
    fn shrink_when_sparse(&mut self);
}

fn is_sparse(len: usize, capacity: usize) -> bool {
    capacity > KEPT && len.saturating_mul(4) <= capacity
}

/// The capacity a collection of `len` entries shrinks to, if it should.
fn shrink_target(len: usize, capacity: usize) -> Option<usize> {
    is_sparse(len, capacity).then(|| (len * 2).max(KEPT / 2))
}

impl<K: Eq + Hash, V, S: BuildHasher> ShrinkWhenSparse for HashMap<K, V, S> {
    fn shrink_when_sparse(&mut self) {
        if let Some(n) = shrink_target(self.len(), self.capacity()) {
            self.shrink_to(n);
        }
    }
}

impl<K: Eq + Hash, S: BuildHasher> ShrinkWhenSparse for HashSet<K, S> {
    fn shrink_when_sparse(&mut self) {
        if let Some(n) = shrink_target(self.len(), self.capacity()) {
            self.shrink_to(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_is_sparse_at_a_quarter_full_and_above_the_kept_size() {
        assert!(!is_sparse(5_000, 14_336));
        assert!(is_sparse(3_584, 14_336));
        assert!(!is_sparse(0, KEPT));
        assert!(is_sparse(0, KEPT + 1));
    }

    #[test]
    fn an_emptied_map_gives_its_room_back() {
        let mut m: HashMap<u64, [u8; 32]> = (0..10_000).map(|k| (k, [0; 32])).collect();
        for k in 0..9_990 {
            m.remove(&k);
            m.shrink_when_sparse();
        }
        assert_eq!(m.len(), 10);
        assert!(
            m.capacity() <= KEPT,
            "capacity {} for 10 entries",
            m.capacity()
        );
        assert!((9_990..10_000).all(|k| m.contains_key(&k)));
    }

    #[test]
    fn an_emptied_set_gives_its_room_back() {
        let mut s: HashSet<u32> = (0..10_000).collect();
        s.retain(|k| *k < 10);
        s.shrink_when_sparse();
        assert_eq!(s.len(), 10);
        assert!(
            s.capacity() <= KEPT,
            "capacity {} for 10 entries",
            s.capacity()
        );
    }
}
