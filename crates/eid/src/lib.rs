//! Electronic identification (định danh và xác thực điện tử): the pure core.
//!
//! This crate owns the rules of dancu's e-ID system, the part that a storage layer and an HTTP
//! layer call into but that needs neither:
//!
//! - [`account`]: one e-ID account per person, bound to the personal ID number; levels 1 and 2
//!   (mức độ 1, mức độ 2); the age rules (14+, 6 to under 14 through a guardian, under 6 level 1
//!   managed by the guardian); level-1 self-registration and the level-2 raise by an officer;
//!   locks with their legal reasons, and the locks that follow the register (death, card revoked).
//! - [`face`]: the pluggable face-check interface and a clearly named demo verifier.
//! - [`authn`]: authenticators — passcodes hashed with Argon2id, one-time codes, TOTP
//!   (RFC 6238), throttling and lockout as a state machine per account and source address.
//! - [`phone`]: Vietnamese mobile numbers.
//! - [`webauthn`]: verification of passkey registrations and assertions (ES256, `fmt: "none"`),
//!   with a small bounded CBOR reader.
//! - [`history`]: the usage-history entries kept five years and shown to the holder.
//! - [`oidc`]: OpenID Connect building blocks — registered clients and authorization-request
//!   validation (exact redirect URIs, PKCE S256, nonce, PAR per client, RFC 9207 `iss`);
//!   compact JWS (ES256 sign/verify, RS256 verify) with a rotating [`oidc::jws::KeySet`] and its
//!   JWKS; ID and access token claims with `acr` mapped from the levels, `amr`, `act` and
//!   `cnf.jkt`; step-up and `max_age`/`prompt` decisions; pairwise subjects; DPoP proofs
//!   (RFC 9449); `private_key_jwt` and `client_secret_basic`; authorization-code and
//!   refresh-token records with rotation and reuse detection; pushed authorization requests;
//!   consent records; and the issuance of ID, access and client-credentials tokens.
//!
//! What it must **not** do: I/O of any kind (files, network, database), async, HTTP types,
//! reading the system clock or the operating system's randomness on its own. Time comes in as a
//! `DateTime<Utc>`/`NaiveDate` argument (callers hold a [`dancu_domain::clock::Clock`]), and
//! randomness as a `&mut impl rand::CryptoRng`. Records here are plain data: the caller loads
//! them, calls a decision function, and writes back what it returns, in one transaction. It does
//! not send SMS, render pages or store the usage history; those belong to `dancu-idp` (the
//! service layer over the document store) and the HTTP crate's `oidc` module. Every refusal is a [`dancu_domain::Problem`] with a stable code and a Vietnamese
//! and an English message.

pub mod account;
pub mod authn;
pub mod b64;
pub mod face;
pub mod history;
pub mod oidc;
pub mod phone;
pub mod webauthn;

pub use account::{Account, AccountStatus, Level};
