//! Throughput of QR parsing and passive authentication on one core, each beside a reference
//! measured in the same run. Prints one JSON object.
//!
//! `CARGO_TARGET_DIR=/work/target-card cargo run --release -p dancu-card --example card_bench`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use dancu_card::crypto::HashAlgorithm;
use dancu_card::crypto::{SignatureScheme, decode_spki, verify_signature};
use dancu_card::{Crl, PaOptions, TrustStore, parse_qr, passive_authentication};
use der::Encode;

const QR: &str =
    "001099012345|012345678|Nguyễn Văn An|01011999|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|15062021";
const SOD: &[u8] = include_bytes!("../fixtures/p256_sod.bin");
const DGS: [(u8, &[u8]); 5] = [
    (1, include_bytes!("../fixtures/dg1.bin")),
    (2, include_bytes!("../fixtures/dg2.bin")),
    (13, include_bytes!("../fixtures/dg13.bin")),
    (14, include_bytes!("../fixtures/dg14.bin")),
    (15, include_bytes!("../fixtures/dg15.bin")),
];
const TRUST: &[u8] = include_bytes!("../fixtures/trust.pem");
const CRL: &[u8] = include_bytes!("../fixtures/p256_csca.crl");

/// Runs `f` repeatedly for about `secs` seconds and returns operations per second.
fn rate(secs: f64, mut f: impl FnMut() -> bool) -> f64 {
    // Warm up.
    for _ in 0..100 {
        assert!(f());
    }
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..64 {
            assert!(black_box(f()));
        }
        n += 64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);

    // QR: full parse + validation vs. a bare split into fields.
    let qr = rate(secs, || parse_qr(black_box(QR)).is_ok());
    let split = rate(secs, || black_box(QR).split('|').count() == 7);

    // Passive authentication of the P-256 SOD (5 data groups, CRL check) vs. one bare P-256
    // verification of the same SOD signature (its signed attributes, already extracted).
    // After the first run the trust store remembers the verified signer certificate and CRL
    // (as it would in production, where one signer covers many cards), so each run verifies
    // one signature plus parsing, hashing and all the other checks.
    let trust = TrustStore::from_pem(TRUST).unwrap();
    let crls = vec![Crl::from_der(CRL).unwrap()];
    let opts = PaOptions::default();
    let pa = rate(secs, || {
        passive_authentication(black_box(SOD), &DGS, &trust, &crls, &opts).all_passed()
    });
    let sod = dancu_card::parse_sod(SOD).unwrap();
    let ds =
        <x509_cert::Certificate as der::Decode>::from_der(&sod.signed.certificates[0]).unwrap();
    let spki = decode_spki(
        &ds.tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap(),
    )
    .unwrap();
    let attrs = sod.signed.signed_attributes.clone().unwrap();
    let sig = sod.signed.signature.clone();
    let scheme = SignatureScheme::Ecdsa {
        hash: HashAlgorithm::Sha256,
        plain: false,
    };
    let bare = rate(secs, || {
        verify_signature(&spki, scheme, black_box(&attrs), &sig).is_ok()
    });

    println!(
        concat!(
            "{{\"qr_parse_validate_per_s\":{:.0},\"qr_reference_split_per_s\":{:.0},",
            "\"pa_p256_per_s\":{:.0},\"pa_reference_bare_p256_verify_per_s\":{:.0},",
            "\"pa_signature_verifications_per_run\":1,\"seconds_per_measure\":{}}}"
        ),
        qr, split, pa, bare, secs
    );
}
