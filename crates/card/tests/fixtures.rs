//! Passive authentication and chip-file parsing over the generated fixtures
//! (`fixtures/make.sh`; the chains were also checked with `openssl cms -verify`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::NaiveDate;
use dancu_card::lds::{parse_dg1, parse_dg2, parse_dg13, parse_dg14, parse_dg15, parse_ef_com};
use dancu_card::pa::TimeSource;
use dancu_card::{
    Crl, ImageFormat, Outcome, PaOptions, PaReport, TrustStore, passive_authentication,
};
use proptest::prelude::*;

const COM: &[u8] = include_bytes!("../fixtures/com.bin");
const DG1: &[u8] = include_bytes!("../fixtures/dg1.bin");
const DG2: &[u8] = include_bytes!("../fixtures/dg2.bin");
const DG13: &[u8] = include_bytes!("../fixtures/dg13.bin");
const DG13_TAMPERED: &[u8] = include_bytes!("../fixtures/dg13_tampered.bin");
const DG14: &[u8] = include_bytes!("../fixtures/dg14.bin");
const DG15: &[u8] = include_bytes!("../fixtures/dg15.bin");
const TRUST_PEM: &[u8] = include_bytes!("../fixtures/trust.pem");
const MASTER_LIST: &[u8] = include_bytes!("../fixtures/masterlist.bin");
const RSA_CSCA: &[u8] = include_bytes!("../fixtures/rsa_csca.pem");

const SODS: [(&str, &[u8]); 4] = [
    ("rsa", include_bytes!("../fixtures/rsa_sod.bin")),
    ("rsapss", include_bytes!("../fixtures/rsapss_sod.bin")),
    ("p256", include_bytes!("../fixtures/p256_sod.bin")),
    ("bp256", include_bytes!("../fixtures/bp256_sod.bin")),
];
const CRLS: [&[u8]; 4] = [
    include_bytes!("../fixtures/rsa_csca.crl"),
    include_bytes!("../fixtures/rsapss_csca.crl"),
    include_bytes!("../fixtures/p256_csca.crl"),
    include_bytes!("../fixtures/bp256_csca.crl"),
];
const SOD_EXPIRED: &[u8] = include_bytes!("../fixtures/p256_sod_expired_signer.bin");
const SOD_REVOKED: &[u8] = include_bytes!("../fixtures/p256_sod_revoked_signer.bin");

fn dgs() -> Vec<(u8, &'static [u8])> {
    vec![(1, DG1), (2, DG2), (13, DG13), (14, DG14), (15, DG15)]
}

fn crls() -> Vec<Crl> {
    CRLS.iter().map(|d| Crl::from_der(d).unwrap()).collect()
}

fn trust() -> TrustStore {
    TrustStore::from_pem(TRUST_PEM).unwrap()
}

fn run(sod: &[u8], dgs: &[(u8, &[u8])], trust: &TrustStore) -> PaReport {
    passive_authentication(sod, dgs, trust, &crls(), &PaOptions::default())
}

/// Every check passes except those named, whose codes must match.
fn assert_only(report: &PaReport, failures: &[(&str, &str)]) {
    for (name, outcome) in report.checks() {
        match failures.iter().find(|(n, _)| *n == name) {
            Some((_, code)) => assert_eq!(outcome.code(), Some(*code), "{name}: {outcome:?}"),
            None => assert_eq!(outcome, &Outcome::Passed, "{name}"),
        }
    }
}

#[test]
fn every_good_chain_passes_every_check() {
    let trust = trust();
    assert_eq!(trust.len(), 4);
    for (name, sod) in SODS {
        let r = run(sod, &dgs(), &trust);
        assert_only(&r, &[]);
        assert!(r.all_passed(), "{name}");
        assert_eq!(r.data_groups.len(), 5, "{name}");
        assert_eq!(r.time_source, TimeSource::SigningTime);
        assert_eq!(
            r.checked_at.unwrap().date_naive(),
            NaiveDate::from_ymd_opt(2021, 6, 15).unwrap()
        );
        assert!(
            r.csca_subject.as_deref().unwrap().contains("CSCA Test"),
            "{name}"
        );
    }
}

#[test]
fn tampered_data_group_fails_only_its_hash() {
    let trust = trust();
    for (name, sod) in SODS {
        let mut d = dgs();
        d[2] = (13, DG13_TAMPERED);
        let r = run(sod, &d, &trust);
        assert_only(&r, &[("dg13_hash", "dg.hash_mismatch")]);
        assert!(!r.all_passed(), "{name}");
    }
}

#[test]
fn expired_signer_is_reported() {
    let r = run(SOD_EXPIRED, &dgs(), &trust());
    assert_only(&r, &[("signer_validity", "cert.expired")]);
}

#[test]
fn revoked_signer_is_reported() {
    let r = run(SOD_REVOKED, &dgs(), &trust());
    assert_only(&r, &[("revocation", "cert.revoked")]);
    // Without CRLs, revocation is not checked rather than passed.
    let r = passive_authentication(SOD_REVOKED, &dgs(), &trust(), &[], &PaOptions::default());
    assert!(matches!(r.revocation, Outcome::NotChecked(_)));
    assert_eq!(r.revocation.code(), Some("crl.none_for_issuer"));
}

#[test]
fn unknown_csca_is_reported() {
    let only_rsa = TrustStore::from_pem(RSA_CSCA).unwrap();
    let r = run(SODS[2].1, &dgs(), &only_rsa);
    assert_eq!(r.certificate_chain.code(), Some("csca.unknown"));
    assert!(r.certificate_chain.is_failed());
    assert!(r.sod_signature.is_passed());
    assert!(r.data_groups.iter().all(|d| d.outcome.is_passed()));
    assert!(matches!(r.csca_validity, Outcome::NotChecked(_)));
    assert!(matches!(r.revocation, Outcome::NotChecked(_)));
    assert!(!r.all_passed());
}

#[test]
fn missing_and_extra_data_groups() {
    let r = run(SODS[2].1, &[(1, DG1), (3, DG2)], &trust());
    assert!(r.data_group(1).unwrap().is_passed());
    assert_eq!(r.data_group(2).unwrap().code(), Some("dg.not_read"));
    assert_eq!(r.data_group(3).unwrap().code(), Some("dg.not_in_sod"));
    assert!(r.sod_signature.is_passed());
}

#[test]
fn master_list_loads_and_verifies() {
    let (store, report) = TrustStore::from_master_list(MASTER_LIST).unwrap();
    assert_eq!(report.certificates, 4);
    assert!(report.signed_attributes.is_passed());
    assert!(report.signature.is_passed());
    assert!(report.signer_chain.is_passed());
    for (name, sod) in SODS {
        assert!(run(sod, &dgs(), &store).all_passed(), "{name}");
    }
}

#[test]
fn broken_sod_is_a_failed_parse_not_a_panic() {
    let r = run(&[0x77, 0x01, 0x00], &dgs(), &trust());
    assert!(r.sod.is_failed());
    assert!(
        r.checks()
            .iter()
            .skip(1)
            .all(|(_, o)| matches!(o, Outcome::NotChecked(_)))
    );
}

#[test]
fn chip_files_parse() {
    let com = parse_ef_com(COM).unwrap();
    assert_eq!(com.data_groups, vec![1, 2, 13, 14, 15]);
    let mrz = parse_dg1(DG1).unwrap();
    assert_eq!(mrz.id.as_str(), "001099012345");
    assert_eq!(mrz.full_name(), "NGUYEN VAN AN");
    assert_eq!(mrz.card_access_number(), "012345");
    let dg2 = parse_dg2(DG2).unwrap();
    assert_eq!(dg2.faces[0].format, ImageFormat::Jpeg);
    let dg13 = parse_dg13(DG13).unwrap();
    assert_eq!(dg13.full_name.as_deref(), Some("Nguyễn Văn An"));
    assert_eq!(dg13.mother_name.as_deref(), Some("Trần Thị Cúc"));
    assert_eq!(dg13.id, Some(mrz.id));
    let dg14 = parse_dg14(DG14).unwrap();
    assert_eq!(dg14.infos[0].protocol, "0.4.0.127.0.7.2.2.1.2");
    let dg15 = parse_dg15(DG15).unwrap();
    assert_eq!(dg15.named_curve.as_deref(), Some("1.2.840.10045.3.1.7"));
    let sod = dancu_card::parse_sod(SODS[0].1).unwrap();
    assert_eq!(sod.lds.data_group_hashes.len(), 5);
    assert_eq!(sod.lds.lds_version.as_deref(), Some("0108"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Corrupting any byte of a good SOD never panics and never yields a fully passed report.
    #[test]
    fn corrupted_sod_never_passes(which in 0usize..4, pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let mut sod = SODS[which].1.to_vec();
        let i = pos.index(sod.len());
        sod[i] ^= xor;
        let r = run(&sod, &dgs(), &trust());
        prop_assert!(!r.all_passed());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = run(&data, &dgs(), &trust());
        let _ = TrustStore::from_master_list(&data);
        let _ = Crl::from_der(&data);
        let _ = TrustStore::from_pem(&data);
    }
}

/// Exhaustive form of `corrupted_sod_never_passes`: flips the low bit of every byte of every
/// good SOD. Slow in debug builds, so opt-in: `cargo test -p dancu-card -- --ignored`.
#[test]
#[ignore]
fn every_single_bit_flip_is_noticed() {
    for (name, sod) in SODS {
        for i in 0..sod.len() {
            let mut s = sod.to_vec();
            s[i] ^= 1;
            assert!(!run(&s, &dgs(), &trust()).all_passed(), "{name}: byte {i}");
        }
    }
}
