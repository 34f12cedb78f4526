//! The GitOps swap benchmark (`swap-bench`): change-to-enforcement through the real policyd
//! (`gitops`), the generation swap timed on the datapath directly (`direct`), and drops under
//! a flood during back-to-back swaps (`flood`), with the namespaces, mounts and synthetic
//! generations they share.

pub mod direct;
pub mod flood;
pub mod gitops;
pub mod stats;
pub mod tables;

use crate::run::signals;
use std::sync::atomic::Ordering;

/// An error once SIGINT, SIGTERM or SIGHUP arrived ([`signals::install`]), so that the bench
/// unwinds through its guards (namespaces, mounts, policyd) instead of dying in place.
pub fn interrupted() -> Result<(), String> {
    match signals::RECEIVED.load(Ordering::Relaxed) {
        0 => Ok(()),
        sig => Err(format!("stopped by signal {sig}")),
    }
}

/// A datapath error with its chain of causes (a verifier rejection carries its log).
pub fn datapath_error(e: enforcer::DatapathError) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!("\n  caused by: {s}"));
        src = s.source();
    }
    msg
}
