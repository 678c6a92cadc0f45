//! Partitions: families, the Redis Cluster CRC16, hash tags.

use std::fmt;

/// The three partition families, each with its own hash-tag prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartitionFamily {
    /// Flows and their executions: `{fp:N}`.
    Flow,
    /// Budgets: `{b:M}`.
    Budget,
    /// Quotas: `{q:K}`.
    Quota,
}

impl PartitionFamily {
    /// The hash-tag prefix: `fp`, `b` or `q`.
    pub fn prefix(self) -> &'static str {
        match self {
            PartitionFamily::Flow => "fp",
            PartitionFamily::Budget => "b",
            PartitionFamily::Quota => "q",
        }
    }
}

/// One partition: a family and an index. All its keys share one hash slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partition {
    /// Its family.
    pub family: PartitionFamily,
    /// Its index within the family, from 0.
    pub index: u16,
}

impl Partition {
    /// The partition `index` of `family`.
    pub fn new(family: PartitionFamily, index: u16) -> Self {
        Self { family, index }
    }

    /// The hash tag, e.g. `{fp:17}`.
    pub fn hash_tag(&self) -> String {
        format!("{{{}:{}}}", self.family.prefix(), self.index)
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}:{}}}", self.family.prefix(), self.index)
    }
}

/// Partition counts per family. Recorded in Valkey at first start and checked
/// at every start: changing them would move every id's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionConfig {
    /// Flow partitions (executions live in these).
    pub flow_partitions: u16,
    /// Budget partitions.
    pub budget_partitions: u16,
    /// Quota partitions.
    pub quota_partitions: u16,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        Self {
            flow_partitions: 256,
            budget_partitions: 32,
            quota_partitions: 32,
        }
    }
}

impl PartitionConfig {
    /// The partition of a flow, budget or quota id (CRC16 of the id modulo the count).
    pub fn partition_of(&self, family: PartitionFamily, id: &str) -> Partition {
        let count = match family {
            PartitionFamily::Flow => self.flow_partitions,
            PartitionFamily::Budget => self.budget_partitions,
            PartitionFamily::Quota => self.quota_partitions,
        };
        Partition::new(family, crc16(id.as_bytes()) % count.max(1))
    }

    /// Every partition of a family, in index order.
    pub fn partitions(&self, family: PartitionFamily) -> impl Iterator<Item = Partition> {
        let count = match family {
            PartitionFamily::Flow => self.flow_partitions,
            PartitionFamily::Budget => self.budget_partitions,
            PartitionFamily::Quota => self.quota_partitions,
        };
        (0..count).map(move |i| Partition::new(family, i))
    }

    /// Counts must be at least 1 and at most 16384 (the cluster's slot count).
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("flow_partitions", self.flow_partitions),
            ("budget_partitions", self.budget_partitions),
            ("quota_partitions", self.quota_partitions),
        ] {
            if v == 0 || v > 16384 {
                return Err(format!("{name} must be in 1..=16384, got {v}"));
            }
        }
        Ok(())
    }
}

/// CRC16/XMODEM, the checksum Redis Cluster uses for key slots.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The cluster slot of a key (honouring `{hash tags}` as Redis does).
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % 16384
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_redis_reference() {
        // The reference value from the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
    }
}
