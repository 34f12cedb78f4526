//! Order statistics of the swap bench's samples (median, p90, max) and their table cells.

use crate::measure::median;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    /// Nearest rank: the smallest sample with at least 90% of the samples at or below it.
    pub p90: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(xs: &[f64]) -> Summary {
        let mut v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return Summary {
                n: 0,
                median: f64::NAN,
                p90: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        let rank = ((v.len() as f64) * 0.9).ceil() as usize;
        Summary {
            n: v.len(),
            median: median(&v),
            p90: v[rank.clamp(1, v.len()) - 1],
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

/// A duration in ms with a precision that suits its size.
pub fn ms_cell(x: f64) -> String {
    if x.is_nan() {
        "-".to_owned()
    } else if x >= 1000.0 {
        format!("{:.2} s", x / 1000.0)
    } else if x >= 100.0 {
        format!("{x:.0} ms")
    } else {
        format!("{x:.1} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_p90_max() {
        let xs: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = Summary::of(&xs);
        assert_eq!(
            (s.n, s.median, s.p90, s.max, s.min),
            (20, 10.5, 18.0, 20.0, 1.0)
        );
        let one = Summary::of(&[4.0]);
        assert_eq!((one.median, one.p90, one.max), (4.0, 4.0, 4.0));
        assert!(Summary::of(&[]).median.is_nan());
        assert_eq!(ms_cell(12.345), "12.3 ms");
        assert_eq!(ms_cell(2500.0), "2.50 s");
        assert_eq!(ms_cell(f64::NAN), "-");
    }
}
