//! Compiles `bpf/noop.bpf.c` (the datapath bench's no-op tc program) with clang into `$OUT_DIR`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let src = "bpf/noop.bpf.c";
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-changed={src}");
    // Debian keeps asm/types.h under the multiarch directory.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".to_owned());
    let output = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-c", src])
        .arg(format!("-I/usr/include/{arch}-linux-gnu"))
        .arg("-o")
        .arg(out.join("noop.bpf.o"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{clang}` (install clang): {e}"));
    if !output.status.success() {
        panic!(
            "clang failed on {src}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
