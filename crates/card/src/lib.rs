//! # dancu-card: reading and checking Vietnamese citizen identity cards
//!
//! This crate owns everything the platform knows about the *card as a document*: the QR code
//! printed on its back, the ICAO TD1 machine-readable zone, the data groups on its chip
//! (EF.COM, DG1, DG2, DG13, DG14, DG15, EF.SOD) and passive authentication of that chip data
//! against trusted country signing CAs.
//!
//! | module | owns |
//! |---|---|
//! | [`id`] | what a card adds to the domain's personal ID: MRZ document number, PACE CAN, holder agreement, `id.*` codes |
//! | [`qr`] | the CCCD QR text: parse, validate, format |
//! | [`mrz`] | TD1 MRZ: parse, check digits, build, transliteration, BAC seed, PACE CAN |
//! | [`tlv`] | a bounded, allocation-free BER-TLV reader (and a writer for fixtures) |
//! | [`lds`] | EF.COM, DG1, DG2, DG13 (Vietnam), DG14, DG15 |
//! | [`sod`] | EF.SOD: CMS SignedData and the LDS security object |
//! | [`crypto`] | hashes and RSA / RSA-PSS / ECDSA (NIST and Brainpool) verification |
//! | [`pa`] | passive authentication, trust store (PEM or ICAO master list), CRLs |
//! | [`report`] | per-check outcomes: passed, failed, not checked — each with a reason code |
//!
//! The personal ID, sex and place-code table are the domain crate's (`dancu-domain`, pure as
//! well); [`id`] re-exports them and adds only the card's view of the number.
//!
//! ## What it must not do
//!
//! - **No I/O, no async, no clock, no randomness.** It takes bytes and returns values; the time
//!   for validity checks is a parameter ([`pa::PaOptions::at`]). Talking to a card reader, NFC,
//!   files or the network belongs to callers.
//! - **No panics on outside input.** Every parser is bounded (input length limits, counted
//!   loops, no allocation sized by a length field) and is fuzzed (`crates/card/fuzz`).
//! - **No opaque verdicts.** Passive authentication reports each check separately
//!   ([`pa::PaReport`]); errors carry stable `code()` strings for APIs and logs.
//! - **No register lookups and no business rules** about people: whether a card matches the
//!   population register, or may be used for a procedure, is decided elsewhere.
//! - It does not do chip access control (BAC/PACE secure messaging) or active/chip
//!   authentication; it only derives their inputs (BAC key seed, CAN) and parses DG14/DG15.

pub mod crypto;
mod date;
pub mod id;
pub mod lds;
pub mod mrz;
pub mod pa;
pub mod qr;
pub mod report;
pub mod sod;
pub mod tlv;

pub use id::{CardNumbers, IdError, PersonalId, Sex};
pub use lds::{Dg2, Dg13, Dg14, EfCom, Expiry, FaceImage, ImageFormat, LdsError, PublicKeyInfo};
pub use mrz::{Mrz, MrzError, MrzInput, build_td1, parse_td1};
pub use pa::{Crl, PaOptions, PaReport, TrustError, TrustStore, passive_authentication};
pub use qr::{QrData, QrError, parse_qr};
pub use report::{Outcome, Reason};
pub use sod::{Sod, SodError, parse_sod};
