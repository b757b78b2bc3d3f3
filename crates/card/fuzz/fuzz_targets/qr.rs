#![no_main]
//! QR text: arbitrary bytes (as UTF-8 when they are) must parse or fail, never panic; what
//! parses must format back to text that parses to the same value.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(q) = dancu_card::parse_qr(text) {
            let again = dancu_card::parse_qr(&q.to_qr_text());
            assert_eq!(again.as_ref().ok(), Some(&q));
        }
    }
});
