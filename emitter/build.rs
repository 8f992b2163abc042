//! Link settings for the emitter's binary only (the collector keeps the
//! workspace's static-pie link, with ASLR, and its unwind tables).
//!
//! - Release (and `ci`, which inherits it): strip the symbol table at link
//!   time. The workspace profile asks for `strip = true`, but with the static
//!   link of this target the symbols stayed in (about 370 KB); the issue caps
//!   the emitter at 2.5 MB.
//! - Static non-PIE (issue 21): with `+crt-static` rustc links a static-pie,
//!   which relocates itself at every start: about 3,500 relocations that
//!   dirty 14 pages (one page fault each, about 2 µs in this VM) and 84 KB of
//!   `.rela.dyn` in the file. The hook runs once per Claude Code event, so
//!   that is paid on every tool call. `-static -no-pie` after rustc's own
//!   `-static-pie` makes gcc link a plain static executable (crt1.o, no
//!   dynamic section); the PIC objects link into it unchanged. The cost is
//!   a fixed load address for the emitter's code and data (its stack, heap
//!   and mmaps are still randomized); DESIGN §1.
//! - No unwind tables in the release-based profiles (release, ci), whose
//!   panics abort: nothing in the
//!   emitter unwinds (the panic hook spools and `_exit`s, there is no C++),
//!   and `.eh_frame` with its index was 255 KB, a tenth of the binary. The
//!   linker script [`DISCARD_UNWIND`] drops them; the C runtime's own
//!   `crtbegin`/`crtend` entries stay, since `crtbeginT.o` refers to them.
//! - The hook's functions together (issue 21): `hot-functions.txt` lists the
//!   functions one hook runs (written by `scripts/hot-functions`), and a
//!   linker script places them first in the text, so a hook touches fewer
//!   64 KB windows of code: 13 text page faults per hook instead of 26. A
//!   name that no longer exists places nothing.

/// Added to the default linker script (`INSERT`), not replacing it: every
/// object's `.eh_frame` but the C runtime's start and end files is dropped.
const DISCARD_UNWIND: &str = "SECTIONS {\n  /DISCARD/ : { EXCLUDE_FILE(*crtbegin*.o *crtend*.o) *(.eh_frame) }\n} INSERT BEFORE .eh_frame_hdr;\n";

/// A linker script that puts the sections of the listed functions (one
/// mangled name a line; `#` comments) in one output section before `.text`.
fn hot_functions_script(list: &str) -> String {
    let mut script = String::from("SECTIONS {\n  .text.hooktrail_hot : {\n");
    for name in list.lines().map(str::trim) {
        // Anything but a symbol name could change the script's meaning.
        let plain = name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'$' | b'.'));
        if !name.is_empty() && !name.starts_with('#') && plain {
            script.push_str(&format!("    *(.text.{name})\n"));
        }
    }
    script.push_str("  }\n} INSERT BEFORE .text;\n");
    script
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // `HOOKTRAIL_EMIT_SYMBOLS=1` keeps the symbol table, for profiling the
    // release binary (callgrind names functions then); nothing else changes.
    println!("cargo:rerun-if-env-changed=HOOKTRAIL_EMIT_SYMBOLS");
    let keep_symbols = std::env::var_os("HOOKTRAIL_EMIT_SYMBOLS").is_some();
    if std::env::var("PROFILE").as_deref() == Ok("release") && !keep_symbols {
        println!("cargo:rustc-link-arg-bins=-Wl,--strip-all");
    }
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let static_crt = features.split(',').any(|feature| feature == "crt-static");
    // Measured on x86_64 only; the aarch64 cross build keeps static-pie.
    let x86_64_linux_gnu = std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64")
        && std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !(static_crt && x86_64_linux_gnu) {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-static");
    println!("cargo:rustc-link-arg-bins=-no-pie");
    // `cfg(panic)` as a build script sees it ignores the profile, so the
    // profile's name stands for it: release and ci set `panic = "abort"`.
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
        let script = std::path::Path::new(&out_dir).join("discard-unwind.ld");
        std::fs::write(&script, DISCARD_UNWIND).expect("OUT_DIR is writable");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
        println!("cargo:rerun-if-changed=hot-functions.txt");
        if let Ok(list) = std::fs::read_to_string("hot-functions.txt") {
            let hot = std::path::Path::new(&out_dir).join("hot-functions.ld");
            std::fs::write(&hot, hot_functions_script(&list)).expect("OUT_DIR is writable");
            println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", hot.display());
        }
    }
}
