//! Link-time layout of `fc-host`, for a small resident set at start
//! (docs/performance.md has the measurements):
//! - a position-independent executable, so the kernel loads the host image
//!   at a random address (ASLR), with its relative relocations packed
//!   (`-z pack-relative-relocs`, DT_RELR) where the C library understands
//!   them (glibc 2.36 and later): the loader then reads a few KiB of bitmaps
//!   instead of a 1.4 MiB table of 24-byte entries;
//! - the functions a run executes, placed together (`hot-symbols.txt`, made
//!   by `benches/orderfile.sh`): the kernel maps code 64 KiB around each page
//!   fault, so hot functions scattered over 22 MiB of text would make most of
//!   it resident. A name the build no longer has is skipped, never an error.
//!
//! `FC_LINK=no-pie` builds a position-dependent executable instead: no
//! relative relocations, but the host image at a fixed address, which a
//! memory-corruption exploit can rely on. Opt-in only (decision 50).
//!
//! All need the default linker of this target, rust-lld.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=host/cli/hot-symbols.txt");
    println!("cargo:rerun-if-env-changed=FC_LINK");
    println!("cargo:rerun-if-env-changed=CC");
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return;
    }
    let link = match std::env::var("FC_LINK").as_deref() {
        Ok("no-pie") => {
            println!("cargo:rustc-link-arg-bins=-no-pie");
            "no-pie"
        }
        Ok("pie") | Err(_) if glibc_packs_relocations() => {
            println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
            "pie-packed"
        }
        Ok("pie") | Err(_) => {
            println!(
                "cargo:warning=the C library (`cc -print-file-name=libc.so.6`) does not define \
                 GLIBC_ABI_DT_RELR (glibc 2.36): fc-host is linked without packed relocations, \
                 which costs about 1.4 MiB of memory per run"
            );
            "pie"
        }
        Ok(other) => panic!("FC_LINK={other}: expected `pie` (the default) or `no-pie`"),
    };
    // What was chosen, for the test that checks the binary against it.
    println!("cargo:rustc-env=FC_LINKED_AS={link}");
    let order = concat!(env!("CARGO_MANIFEST_DIR"), "/host/cli/hot-symbols.txt");
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={order}");
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}

/// Whether the glibc fc-host links against defines `GLIBC_ABI_DT_RELR`, the
/// version a binary with packed relocations requires: lld adds that
/// requirement without checking it, so on an older glibc the binary it
/// links would not start.
fn glibc_packs_relocations() -> bool {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let Ok(out) = Command::new(cc).arg("-print-file-name=libc.so.6").output() else {
        return false;
    };
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    std::fs::read(&path).is_ok_and(|libc| {
        libc.windows(b"GLIBC_ABI_DT_RELR".len())
            .any(|w| w == b"GLIBC_ABI_DT_RELR")
    })
}
