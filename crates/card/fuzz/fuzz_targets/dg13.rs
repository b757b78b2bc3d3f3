#![no_main]
//! DG13 (Vietnam's personal data group): parse, and re-encode what parses.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = dancu_card::lds::parse_dg13(data) {
        // Encoding normalises the layout; the fields must survive it.
        let again = dancu_card::lds::parse_dg13(&dancu_card::lds::encode_dg13(&d));
        assert!(again.is_ok());
    }
});
