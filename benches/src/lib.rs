//! Synthetic policy trees, same-run baselines and paired datapath measurements for benchmarking
//! `policyc` and the enforcer.
//!
//! Nothing here is published or run by `cargo test` of the product crates: the binaries
//! `gen-tree`, `check-bench`, `compile-bench`, `datapath-bench` and `swap-bench` are run by
//! hand (see README.md).

pub mod datapath;
pub mod emit;
pub mod gen;
pub mod measure;
pub mod netns;
pub mod run;
pub mod swap;
