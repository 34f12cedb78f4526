//! Synthetic policy trees and same-run baselines for benchmarking `policyc`.
//!
//! Nothing here is published or run by `cargo test` of the product crates: the binaries
//! `gen-tree`, `check-bench`, `compile-bench` and `swap-bench` are run by hand (see README.md).

pub mod emit;
pub mod gen;
pub mod measure;
pub mod run;
pub mod swap;
