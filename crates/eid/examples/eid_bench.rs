//! Benchmark of the e-ID core's hot paths, each beside a reference measured in the same run:
//!
//! - passcode verification (PHC parse + Argon2id at the default m=19 MiB, t=2, p=1) vs raw
//!   `argon2` hashing at the same parameters;
//! - access-token signing (claims → JSON → ES256 compact JWS, what client-credentials issuance
//!   costs without I/O) vs a raw P-256 signature over a message of the same length;
//! - access-token verification by the key set;
//! - the pure part of an authorization-code exchange (redeem with PKCE, sign ID and access
//!   tokens), as latency percentiles.
//!
//! Prints one JSON object. Run: `cargo run --release -p dancu-eid --example eid_bench [seconds]`.

use argon2::{Algorithm, Argon2, Params, Version};
use chrono::Utc;
use dancu_domain::PersonalId;
use dancu_eid::Level;
use dancu_eid::authn::passcode::{PasscodeCheck, PasscodeHasher, PasscodeParams};
use dancu_eid::oidc::claims::Amr;
use dancu_eid::oidc::claims::{AccessTokenClaims, TYP_ACCESS_TOKEN};
use dancu_eid::oidc::grants::{AuthorizationCode, CodeRedemption, Grant};
use dancu_eid::oidc::issue::{TokenConfig, user_tokens};
use dancu_eid::oidc::jws::KeySet;
use dancu_eid::oidc::pkce::challenge_s256;
use dancu_eid::oidc::subject::{SubjectSalt, SubjectType};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::Generate;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Rates of `a` and `b` (operations per second), measured in alternating slices so that load
/// from other processes falls on both alike.
fn paired(budget: Duration, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    const SLICES: u32 = 6;
    a(); // warm up
    b();
    let slice = budget / SLICES;
    let (mut na, mut ta, mut nb, mut tb) = (0u64, Duration::ZERO, 0u64, Duration::ZERO);
    for _ in 0..SLICES {
        let start = Instant::now();
        while start.elapsed() < slice {
            a();
            na += 1;
        }
        ta += start.elapsed();
        let start = Instant::now();
        while start.elapsed() < slice {
            b();
            nb += 1;
        }
        tb += start.elapsed();
    }
    (na as f64 / ta.as_secs_f64(), nb as f64 / tb.as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let budget = Duration::from_secs(secs);
    let mut rng = rand::rng();

    // Passcodes.
    let params = PasscodeParams::default();
    let hasher = PasscodeHasher::new(params)?;
    let phc = hasher.hash("271828", &mut rng)?;
    let raw = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(params.m_kib, params.t, params.p, None).map_err(|e| e.to_string())?,
    );
    let salt = [7u8; 16];
    let mut out = [0u8; 32];
    let (verify_rate, raw_rate) = paired(
        budget,
        || {
            let ok = hasher.verify(black_box("271828"), &phc);
            assert!(matches!(ok, Ok(PasscodeCheck::Valid { .. })));
        },
        || {
            must(raw.hash_password_into(black_box(b"271828"), &salt, &mut out));
            black_box(&out);
        },
    );

    // Tokens.
    let now = Utc::now();
    let keys = KeySet::generate(&mut rng, now)?;
    let claims = AccessTokenClaims {
        iss: "https://id.dancu.example".into(),
        sub: "tax-office-client".into(),
        aud: "https://api.dancu.example".into(),
        exp: now.timestamp() + 300,
        iat: now.timestamp(),
        jti: "Xk3o9s0dJ2lq8VbqkR1t5w".into(),
        client_id: "tax-office-client".into(),
        scope: "registry:verify".into(),
        acr: None,
        auth_time: None,
        act: None,
        cnf: None,
    };
    let token = keys.sign(TYP_ACCESS_TOKEN, &claims)?;
    let bare_key = SigningKey::generate_from_rng(&mut rng);
    let msg_len = token.rfind('.').unwrap_or(token.len());
    let msg = vec![b'a'; msg_len];
    let (sign_rate, bare_sign_rate) = paired(
        budget,
        || {
            black_box(must(keys.sign(TYP_ACCESS_TOKEN, black_box(&claims))));
        },
        || {
            let s: Signature = bare_key.sign(black_box(&msg));
            black_box(s);
        },
    );
    let (verify_token_rate, _) = paired(
        budget,
        || {
            let c: AccessTokenClaims = must(keys.verify(black_box(&token), TYP_ACCESS_TOKEN, now));
            black_box(c);
        },
        || {},
    );

    // Authorization-code exchange, the pure part: redeem (PKCE) and sign ID + access tokens.
    let cfg = TokenConfig::new("https://id.dancu.example");
    let salt = SubjectSalt::new([5; 32]);
    let st = SubjectType::Pairwise {
        sector: "bank.example".into(),
    };
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let grant = Grant {
        id: "g".into(),
        client_id: "bank".into(),
        person: must(PersonalId::parse("001090000001")),
        actor: None,
        scope: "openid profile".into(),
        level: Level::Two,
        amr: vec![Amr::Passcode, Amr::Sms],
        auth_time: now,
        dpop_jkt: None,
    };
    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget {
        let (mut code, _) = AuthorizationCode::issue(
            &mut rng,
            grant.clone(),
            "https://bank.example/cb".into(),
            challenge_s256(verifier),
            Some("n".into()),
            now,
        );
        let t = Instant::now();
        let g = must(code.redeem(
            &CodeRedemption {
                client_id: "bank",
                redirect_uri: Some("https://bank.example/cb"),
                code_verifier: Some(verifier),
                dpop_jkt: None,
            },
            now,
        ))
        .clone();
        let toks = must(user_tokens(
            &cfg,
            &keys,
            &salt,
            &st,
            &g,
            Some("n"),
            "https://api",
            &mut rng,
            now,
        ));
        black_box(toks);
        lat.push(t.elapsed());
    }
    lat.sort();
    let pct = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;

    let report = serde_json::json!({
        "benchmark": "dancu-eid core",
        "seconds_per_measurement": secs,
        "threads": 1,
        "passcode": {
            "params": {"m_kib": params.m_kib, "t": params.t, "p": params.p},
            "verify_per_s": round(verify_rate),
            "reference_raw_argon2id_hash_per_s": round(raw_rate),
            "ratio": round3(verify_rate / raw_rate),
            "target_ratio": 0.8,
        },
        "access_token": {
            "bytes": token.len(),
            "sign_es256_per_s": round(sign_rate),
            "reference_raw_p256_sign_per_s": round(bare_sign_rate),
            "ratio": round3(sign_rate / bare_sign_rate),
            "verify_es256_per_s": round(verify_token_rate),
            "target_sign_per_s_per_core": 1000,
        },
        "code_exchange_pure": {
            "samples": lat.len(),
            "p50_ms": round3(pct(0.5)),
            "p99_ms": round3(pct(0.99)),
            "target_p99_ms": 10,
            "note": "redeem with PKCE + ID and access token signing; no I/O",
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Benchmarks stop on the first failure: a failing operation would make the rate meaningless.
fn must<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("benchmarked operation failed: {e:?}"),
    }
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
