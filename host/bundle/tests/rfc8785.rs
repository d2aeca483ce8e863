//! The canonical form is RFC 8785's: the reference test vectors (from the
//! RFC's authors, as the `rfc8785` sdist carries them; unpacked into
//! tests/suites/ by guests/toolchains.sh) come out byte for byte.

use std::path::Path;

#[test]
fn the_rfc_8785_reference_vectors_come_out_byte_for_byte() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/suites/rfc8785");
    assert!(
        dir.join("input").is_dir(),
        "the RFC 8785 vectors are missing at {}: run guests/toolchains.sh",
        dir.display()
    );
    let mut checked = 0;
    for entry in std::fs::read_dir(dir.join("input")).unwrap() {
        let input = entry.unwrap().path();
        let name = input.file_name().unwrap();
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&input).unwrap()).unwrap();
        let expected = std::fs::read(dir.join("output").join(name)).unwrap();
        let got = femtoclaw_bundle::canonical_json(&value).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "{}",
            name.to_string_lossy()
        );
        checked += 1;
    }
    assert_eq!(checked, 6, "every vector file was read");
}
