//! The datapath bench's parts: namespaces, the node topology, the policy in each enforcer's
//! form, the paired load generator and policyd's memory (the binary is `src/bin/datapath-bench.rs`).

pub mod load;
pub mod policy;
pub mod policyd;
pub mod topo;
