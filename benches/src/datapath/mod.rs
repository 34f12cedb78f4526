//! The datapath bench's parts: namespaces, the node topology, the policy in each enforcer's
//! form, and the paired load generator (the binary is `src/bin/datapath-bench.rs`).

pub mod load;
pub mod netns;
pub mod policy;
pub mod topo;
