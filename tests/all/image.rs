//! The `fc-host` executable itself: position-independent, so the kernel
//! loads its image at a random address (decision 50). A link flag is easy
//! to flip for a benchmark figure; this keeps the default honest.

/// Reads the ELF header's type and the names of the sections.
fn elf(bytes: &[u8]) -> (u16, Vec<String>) {
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    assert_eq!(&bytes[..5], b"\x7fELF\x02", "not a 64-bit ELF file");
    let (sections, entry, count) = (u64_at(0x28), usize::from(u16_at(0x3a)), u16_at(0x3c));
    let names_at = u64_at(sections + entry * usize::from(u16_at(0x3e)) + 0x18);
    let names = (0..usize::from(count))
        .map(|i| {
            let start = names_at + u32_at(sections + entry * i) as usize;
            let end = start + bytes[start..].iter().position(|&b| b == 0).unwrap();
            String::from_utf8_lossy(&bytes[start..end]).into_owned()
        })
        .collect();
    (u16_at(0x10), names)
}

#[test]
fn fc_host_is_a_position_independent_executable() {
    const ET_DYN: u16 = 3;
    let bytes = std::fs::read(env!("CARGO_BIN_EXE_fc-host")).unwrap();
    let (kind, sections) = elf(&bytes);
    assert_eq!(kind, ET_DYN, "fc-host must be a PIE (build.rs, FC_LINK)");
    assert!(
        sections.iter().any(|s| s == ".interp"),
        "a dynamic executable has a loader"
    );
    // Built where glibc understands packed relocations (this machine and CI),
    // the table is packed: the memory a PIE would otherwise cost.
    let libc = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap_or_default();
    if libc.windows(17).any(|w| w == b"GLIBC_ABI_DT_RELR") {
        assert!(sections.iter().any(|s| s == ".relr.dyn"), "{sections:?}");
    }
}
