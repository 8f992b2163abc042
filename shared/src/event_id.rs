//! Event ids: UUID v7, built here from the `getrandom` system call.
//!
//! The `uuid` crate draws its randomness through the `getrandom` crate, which
//! in these static builds cannot find the libc wrapper it looks up
//! at run time and falls back to files: every hook opened and polled
//! `/dev/random`, then opened and read `/dev/urandom` (six system calls and
//! a futex, issue 12). A v7 id needs 74 random bits and a timestamp; one
//! `getrandom(2)` call gives the bits, so the id is built by hand.

use std::io::Read;

/// A fresh UUID v7 for `unix_millis`, in its 36-character text form.
pub fn new_v7(unix_millis: u64) -> String {
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&unix_millis.to_be_bytes()[2..]);
    fill_random(&mut bytes[6..]);
    // Version 7 in the high nibble of byte 6, variant 0b10 in byte 8.
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(36);
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push(HEX[(byte >> 4) as usize] as char);
        text.push(HEX[(byte & 0x0f) as usize] as char);
    }
    text
}

/// Fills `buffer` from the kernel's random pool: `getrandom(2)`, or
/// `/dev/urandom` on a kernel without it (before 3.17).
pub(crate) fn fill_random(buffer: &mut [u8]) {
    let mut filled = 0;
    while filled < buffer.len() {
        let rest = &mut buffer[filled..];
        // SAFETY: the pointer and length describe `rest`, which is writable
        // for its whole length.
        let got = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if got > 0 {
            filled += got as usize;
            continue;
        }
        if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if let Ok(mut file) = std::fs::File::open("/dev/urandom") {
            let _ = file.read_exact(rest);
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_sortable_and_distinct() {
        let first = new_v7(1_732_312_345_678);
        let second = new_v7(1_732_312_345_679);
        assert_eq!(first.len(), 36);
        assert_eq!(&first[14..15], "7");
        assert!(matches!(&first[19..20], "8" | "9" | "a" | "b"), "{first}");
        assert!(first.starts_with("019355dc-ac4e-7"), "{first}");
        assert!(first < second);
        assert_ne!(new_v7(1), new_v7(1));
        let dashes: Vec<usize> = first.match_indices('-').map(|(at, _)| at).collect();
        assert_eq!(dashes, vec![8, 13, 18, 23]);
    }
}
