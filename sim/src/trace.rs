//! The run's trace hash: every store call and its outcome folded into one
//! number, so two runs of a seed can be compared exactly.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trace {
    hash: u64,
    pub events: u64,
}

impl Default for Trace {
    fn default() -> Self {
        Self {
            hash: 0xcbf2_9ce4_8422_2325,
            events: 0,
        }
    }
}

impl Trace {
    pub fn record(&mut self, parts: &[&[u8]]) {
        for p in parts {
            for &b in p.iter() {
                self.hash ^= b as u64;
                self.hash = self.hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
            self.hash ^= 0xff;
            self.hash = self.hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.events += 1;
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn order_and_boundaries_matter() {
        let mut a = super::Trace::default();
        let mut b = super::Trace::default();
        a.record(&[b"ab", b"c"]);
        b.record(&[b"a", b"bc"]);
        assert_ne!(a.hash(), b.hash());
    }
}
