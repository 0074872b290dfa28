//! Money in Vietnamese đồng: integers, no minor unit.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount in VND. The đồng has no minor unit in use, so an integer is exact.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(u64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn vnd(amount: u64) -> Money {
        Money(amount)
    }

    pub const fn as_vnd(self) -> u64 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }
}

impl fmt::Display for Money {
    /// `1.250.000 ₫`, the way amounts are printed on Vietnamese receipts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 4);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push('.');
            }
            out.push(c);
        }
        write!(f, "{out} ₫")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display() {
        assert_eq!(Money::vnd(0).to_string(), "0 ₫");
        assert_eq!(Money::vnd(200).to_string(), "200 ₫");
        assert_eq!(Money::vnd(1_250_000).to_string(), "1.250.000 ₫");
        assert_eq!(Money::vnd(100_000).to_string(), "100.000 ₫");
        assert_eq!(Money::vnd(u64::MAX).checked_add(Money::vnd(1)), None);
    }
}
