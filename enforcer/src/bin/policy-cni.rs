//! `policy-cni`: the CNI plugin binary. The runtime's environment and stdin in, the result or
//! the specification's error object out (see `enforcer::cni`).

use std::io::{Read, Write};

fn main() {
    let mut stdin = Vec::new();
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => enforcer::cni::run(|name| std::env::var(name).ok(), &stdin),
        Err(e) => enforcer::cni::read_error(e),
    };
    for note in &outcome.notes {
        eprintln!("{note}");
    }
    let mut out = std::io::stdout().lock();
    if !outcome.stdout.is_empty() {
        let _ = writeln!(out, "{}", outcome.stdout);
    }
    let _ = out.flush();
    std::process::exit(outcome.exit_code);
}
