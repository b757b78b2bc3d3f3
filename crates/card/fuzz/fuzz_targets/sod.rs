#![no_main]
//! EF.SOD parsing, and full passive authentication of the input as an SOD against an empty
//! trust store (exercises CMS, certificate and signature code on hostile input).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dancu_card::parse_sod(data);
    let _ = dancu_card::TrustStore::from_master_list(data);
    let _ = dancu_card::passive_authentication(
        data,
        &[(1, data)],
        &dancu_card::TrustStore::new(),
        &[],
        &dancu_card::PaOptions::default(),
    );
});
