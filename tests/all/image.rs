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
fn fc_host_is_linked_as_its_build_chose_and_by_default_position_independent() {
    const ET_DYN: u16 = 3;
    const ET_EXEC: u16 = 2;
    // `build.rs` says how it linked: `pie-packed`, `pie` (a glibc older
    // than packed relocations) or `no-pie` (the opt-in).
    let linked = env!("FC_LINKED_AS");
    if option_env!("FC_LINK").is_none() {
        assert_ne!(
            linked, "no-pie",
            "the default link must keep ASLR (decision 50)"
        );
    }
    let bytes = std::fs::read(env!("CARGO_BIN_EXE_fc-host")).unwrap();
    let (kind, sections) = elf(&bytes);
    let want = if linked == "no-pie" { ET_EXEC } else { ET_DYN };
    assert_eq!(kind, want, "fc-host linked as {linked}");
    assert!(
        sections.iter().any(|s| s == ".interp"),
        "a dynamic executable has a loader"
    );
    let packed = sections.iter().any(|s| s == ".relr.dyn");
    assert_eq!(packed, linked == "pie-packed", "{linked}: {sections:?}");
}
