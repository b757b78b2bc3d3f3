#![no_main]
//! TD1 MRZ text, and DG1 bytes around it.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(m) = dancu_card::parse_td1(text) {
            let _ = m.bac_key_seed();
            assert_eq!(m.card_access_number().len(), 6);
        }
    }
    let _ = dancu_card::lds::parse_dg1(data);
});
