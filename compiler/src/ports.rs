//! Port ranges as the fewest prefix-aligned blocks, the form the datapath's policy keys take.

/// A block of ports: `port` with its top `prefix_len` bits fixed (16 = one port, 0 = all).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct PortPrefix {
    pub port: u16,
    pub prefix_len: u8,
}

impl PortPrefix {
    pub const ALL: PortPrefix = PortPrefix {
        port: 0,
        prefix_len: 0,
    };

    pub fn single(port: u16) -> PortPrefix {
        PortPrefix {
            port,
            prefix_len: 16,
        }
    }

    fn mask(self) -> u16 {
        if self.prefix_len == 0 {
            0
        } else {
            u16::MAX << (16 - u32::from(self.prefix_len))
        }
    }

    pub fn contains(self, port: u16) -> bool {
        port & self.mask() == self.port & self.mask()
    }

    /// Whether every port of `other` is in `self`.
    pub fn covers(self, other: PortPrefix) -> bool {
        self.prefix_len <= other.prefix_len && self.contains(other.port)
    }

    pub fn first(self) -> u16 {
        self.port & self.mask()
    }

    pub fn last(self) -> u16 {
        self.first() | !self.mask()
    }
}

impl std::fmt::Display for PortPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix_len {
            0 => f.write_str("*"),
            16 => write!(f, "{}", self.port),
            _ => write!(f, "{}-{}", self.first(), self.last()),
        }
    }
}

/// Splits the inclusive range `first..=last` into the fewest prefix-aligned blocks.
pub fn range_to_prefixes(first: u16, last: u16) -> Vec<PortPrefix> {
    let mut out = Vec::new();
    if first > last {
        return out;
    }
    let (mut lo, hi) = (u32::from(first), u32::from(last));
    while lo <= hi {
        // The largest aligned block starting at `lo` that stays within `hi`.
        let mut size_bits = if lo == 0 {
            16
        } else {
            lo.trailing_zeros().min(16)
        };
        while size_bits > 0 && lo + (1 << size_bits) - 1 > hi {
            size_bits -= 1;
        }
        out.push(PortPrefix {
            port: lo as u16,
            prefix_len: (16 - size_bits) as u8,
        });
        lo += 1 << size_bits;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_into_fewest_blocks() {
        assert_eq!(range_to_prefixes(80, 80), vec![PortPrefix::single(80)]);
        assert_eq!(range_to_prefixes(0, 65535), vec![PortPrefix::ALL]);
        let blocks = range_to_prefixes(8000, 8080);
        let covered: Vec<u16> = (0..=65535u16)
            .filter(|p| blocks.iter().any(|b| b.contains(*p)))
            .collect();
        assert_eq!(covered, (8000..=8080).collect::<Vec<u16>>());
        assert_eq!(blocks.len(), 3, "{blocks:?}");
        assert_eq!(range_to_prefixes(1, 65535).len(), 16);
    }

    #[test]
    fn every_range_is_covered_exactly() {
        for (a, b) in [
            (1u16, 1u16),
            (3, 17),
            (1024, 2047),
            (1000, 1999),
            (65534, 65535),
            (0, 5),
        ] {
            let blocks = range_to_prefixes(a, b);
            for p in a.saturating_sub(3)..=b.saturating_add(3) {
                let inside = p >= a && p <= b;
                assert_eq!(
                    blocks.iter().filter(|x| x.contains(p)).count(),
                    usize::from(inside),
                    "{a}-{b} at {p}"
                );
            }
        }
    }
}
