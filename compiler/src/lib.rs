//! The policy compiler: resolves a typed policy tree against its workloads into identities,
//! a per-endpoint policy, and the bundle that the datapath enforces and `policyc` explains.
//!
//! Architecture invariant: nothing here knows about aya, tokio or the kernel; the bundle is
//! plain data, and [`lookup`] performs on it exactly the lookups the datapath performs.

pub mod bundle;
pub mod flow;
pub mod identity;
pub mod inventory;
pub mod ir;
pub mod lookup;
pub mod lower;
pub mod matrix;
pub mod ports;
pub mod reference;
pub mod timing;
