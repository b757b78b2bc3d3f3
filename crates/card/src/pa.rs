//! Passive authentication (ICAO 9303 part 11): are the data groups read from the chip the ones
//! the issuing state signed? Each check is reported on its own — data-group hashes, signed
//! attributes, the SOD signature, the chain to a trusted CSCA, validity periods and revocation —
//! as [`Outcome::Passed`], [`Outcome::Failed`] or [`Outcome::NotChecked`] with a reason.
//!
//! Time is a parameter: validity is checked at the SOD's `signingTime` when it has one,
//! otherwise at [`PaOptions::at`]; without either, validity is reported as not checked.

use std::collections::HashMap;
use std::ops::Range;

use chrono::{DateTime, Utc};
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::time::Time;

use cms::signed_data::SignerIdentifier;

use crate::crypto::{HashAlgorithm, signature_scheme, verify_signature};
use crate::report::{Outcome, Reason};
use crate::sod::{OID_CSCA_MASTER_LIST, SignedContent, SodError, parse_signed_content, parse_sod};
use crate::tlv::{TlvReader, read_single};

/// Why a trust store, certificate or CRL could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// A certificate or CRL is not valid DER.
    #[error("ASN.1: {0}")]
    Der(String),
    /// PEM text is malformed.
    #[error("PEM: {0}")]
    Pem(String),
    /// No certificate was found in the input.
    #[error("no certificate found")]
    NoCertificates,
    /// The master list's CMS structure is invalid.
    #[error("master list: {0}")]
    MasterList(#[from] SodError),
}

impl TrustError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TrustError::Der(_) => "trust.der",
            TrustError::Pem(_) => "trust.pem",
            TrustError::NoCertificates => "trust.no_certificates",
            TrustError::MasterList(e) => e.code(),
        }
    }
}

pub(crate) fn to_chrono(t: &Time) -> Option<DateTime<Utc>> {
    let d = t.to_unix_duration();
    DateTime::from_timestamp(i64::try_from(d.as_secs()).ok()?, d.subsec_nanos())
}

/// A certificate together with its original DER (signatures are checked over the original
/// to-be-signed bytes, never a re-encoding).
#[derive(Debug, Clone)]
pub struct CertEntry {
    /// The decoded certificate.
    pub cert: Certificate,
    der: Vec<u8>,
    tbs: Range<usize>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
}

fn first_child_range(der: &[u8]) -> Result<Range<usize>, TrustError> {
    let outer = read_single(der, 0x30).map_err(|e| TrustError::Der(e.to_string()))?;
    let first = outer
        .children()
        .read_tag(0x30)
        .map_err(|e| TrustError::Der(e.to_string()))?;
    let start = first.raw.as_ptr() as usize - der.as_ptr() as usize;
    Ok(start..start + first.raw.len())
}

impl CertEntry {
    /// Decode a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, TrustError> {
        let cert = Certificate::from_der(der).map_err(|e| TrustError::Der(e.to_string()))?;
        let tbs = first_child_range(der)?;
        let enc =
            |n: &x509_cert::name::Name| n.to_der().map_err(|e| TrustError::Der(e.to_string()));
        let subject = enc(cert.tbs_certificate().subject())?;
        let issuer = enc(cert.tbs_certificate().issuer())?;
        Ok(CertEntry {
            cert,
            der: der.to_vec(),
            tbs,
            subject,
            issuer,
        })
    }

    /// The original DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Subject as text.
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate().subject().to_string()
    }

    fn verify_issued_by(&self, issuer: &CertEntry) -> Result<(), Reason> {
        if self.cert.signature_algorithm() != self.cert.tbs_certificate().signature() {
            return Err(Reason::new(
                "cert.algorithm_mismatch",
                "outer and signed signature algorithms differ",
            ));
        }
        let scheme = signature_scheme(self.cert.signature_algorithm(), None)?;
        let sig =
            self.cert.signature().as_bytes().ok_or_else(|| {
                Reason::new("crypto.signature_invalid", "signature has unused bits")
            })?;
        verify_signature(
            issuer.cert.tbs_certificate().subject_public_key_info(),
            scheme,
            &self.der[self.tbs.clone()],
            sig,
        )
    }

    fn validity_at(&self, at: DateTime<Utc>, who: &str) -> Result<(), Reason> {
        let v = self.cert.tbs_certificate().validity();
        let (nb, na) = (to_chrono(&v.not_before), to_chrono(&v.not_after));
        if nb.is_some_and(|nb| at < nb) {
            return Err(Reason::new(
                "cert.not_yet_valid",
                format!("{who} certificate not valid before {}", v.not_before),
            ));
        }
        if na.is_none_or(|na| at > na) {
            return Err(Reason::new(
                "cert.expired",
                format!("{who} certificate expired {}", v.not_after),
            ));
        }
        Ok(())
    }

    fn key_id(&self) -> Option<Vec<u8>> {
        match self
            .cert
            .tbs_certificate()
            .get_extension::<SubjectKeyIdentifier>()
        {
            Ok(Some((_, ski))) => Some(ski.0.as_bytes().to_vec()),
            _ => None,
        }
    }

    fn matches(&self, sid: &SignerIdentifier) -> bool {
        match sid {
            SignerIdentifier::IssuerAndSerialNumber(isn) => {
                isn.serial_number.as_bytes()
                    == self.cert.tbs_certificate().serial_number().as_bytes()
                    && isn.issuer.to_der().ok().as_deref() == Some(self.issuer.as_slice())
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                self.key_id().as_deref() == Some(ski.0.as_bytes())
            }
        }
    }
}

/// Split PEM text into the DER of each block with the given label.
fn pem_blocks(pem: &[u8], label: &str) -> Result<Vec<Vec<u8>>, TrustError> {
    let text = std::str::from_utf8(pem).map_err(|_| TrustError::Pem("not UTF-8".into()))?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find(&begin) {
        let after = &rest[b..];
        let e = after
            .find(&end)
            .ok_or_else(|| TrustError::Pem(format!("unterminated {label}")))?;
        let block = &after[..e + end.len()];
        let (_, der) =
            der::pem::decode_vec(block.as_bytes()).map_err(|e| TrustError::Pem(e.to_string()))?;
        out.push(der);
        rest = &after[e + end.len()..];
    }
    Ok(out)
}

/// Remembers signatures already verified against this store (a document signer certificate
/// is shared by many cards, a CRL by all of them), so each is checked once. Keyed by SHA-256 of
/// the exact bytes, bounded in size; it changes speed only, never an outcome.
#[derive(Debug, Default)]
struct VerifiedMemo(std::sync::Mutex<HashMap<[u8; 32], usize>>);

const MEMO_LIMIT: usize = 4096;

impl Clone for VerifiedMemo {
    fn clone(&self) -> Self {
        VerifiedMemo(std::sync::Mutex::new(
            self.0.lock().map(|m| m.clone()).unwrap_or_default(),
        ))
    }
}

impl VerifiedMemo {
    fn key(parts: &[&[u8]]) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
        h.finalize().into()
    }

    fn get(&self, key: &[u8; 32]) -> Option<usize> {
        self.0.lock().ok()?.get(key).copied()
    }

    fn put(&self, key: [u8; 32], value: usize) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= MEMO_LIMIT {
                m.clear();
            }
            m.insert(key, value);
        }
    }
}

/// The trusted country signing CA certificates (CSCA).
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    certs: Vec<CertEntry>,
    by_subject: HashMap<Vec<u8>, Vec<usize>>,
    memo: VerifiedMemo,
}

/// What loading a master list found.
#[derive(Debug, Clone)]
pub struct MasterListReport {
    /// Number of CSCA certificates loaded.
    pub certificates: usize,
    /// The master list's signed attributes (content type, message digest).
    pub signed_attributes: Outcome,
    /// The master list's signature, by the signer certificate it carries.
    pub signature: Outcome,
    /// Whether that signer certificate is issued by a CSCA in the list.
    pub signer_chain: Outcome,
}

impl TrustStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of certificates.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// The certificates.
    pub fn certificates(&self) -> &[CertEntry] {
        &self.certs
    }

    /// Add one DER certificate.
    pub fn add_der(&mut self, der: &[u8]) -> Result<(), TrustError> {
        let e = CertEntry::from_der(der)?;
        self.by_subject
            .entry(e.subject.clone())
            .or_default()
            .push(self.certs.len());
        self.certs.push(e);
        Ok(())
    }

    /// Add every `CERTIFICATE` block of PEM text; returns how many were added.
    pub fn add_pem(&mut self, pem: &[u8]) -> Result<usize, TrustError> {
        let blocks = pem_blocks(pem, "CERTIFICATE")?;
        for b in &blocks {
            self.add_der(b)?;
        }
        Ok(blocks.len())
    }

    /// A store from PEM text with at least one certificate.
    pub fn from_pem(pem: &[u8]) -> Result<Self, TrustError> {
        let mut s = Self::new();
        if s.add_pem(pem)? == 0 {
            return Err(TrustError::NoCertificates);
        }
        Ok(s)
    }

    /// A store from an ICAO master list (DER CMS SignedData holding a CscaMasterList).
    /// The list's own signature is verified and reported, but the certificates are loaded
    /// either way: deciding whether to trust an unverified list is the caller's call.
    pub fn from_master_list(der: &[u8]) -> Result<(Self, MasterListReport), TrustError> {
        if der.len() > crate::sod::MAX_MASTER_LIST_LEN {
            return Err(SodError::TooLarge(der.len()).into());
        }
        let signed = parse_signed_content(der, OID_CSCA_MASTER_LIST)?;
        let ml = read_single(&signed.econtent, 0x30).map_err(SodError::from)?;
        let mut r = ml.children();
        r.read_tag(0x02).map_err(SodError::from)?;
        let set = r.read_tag(0x31).map_err(SodError::from)?;
        let mut store = Self::new();
        let mut cr: TlvReader<'_> = set.children();
        while let Some(c) = cr.next_tlv().map_err(SodError::from)? {
            store.add_der(c.raw)?;
        }
        let check = verify_cms(&signed);
        let signer_chain = match &check.signer {
            None => Outcome::skipped("cms.signer_unknown", "no signer certificate"),
            Some(signer) => match store.find_issuer(signer) {
                Ok(_) => Outcome::Passed,
                Err(r) => Outcome::Failed(r),
            },
        };
        let report = MasterListReport {
            certificates: store.len(),
            signed_attributes: check.signed_attributes,
            signature: check.signature,
            signer_chain,
        };
        Ok((store, report))
    }

    /// The trusted certificate that issued `cert`, verifying the signature.
    fn find_issuer(&self, cert: &CertEntry) -> Result<&CertEntry, Reason> {
        let Some(candidates) = self.by_subject.get(&cert.issuer) else {
            return Err(Reason::new(
                "csca.unknown",
                format!(
                    "no trusted CSCA named {}",
                    cert.cert.tbs_certificate().issuer()
                ),
            ));
        };
        let key = VerifiedMemo::key(&[b"cert", &cert.der]);
        if let Some(i) = self.memo.get(&key).filter(|i| candidates.contains(i)) {
            return Ok(&self.certs[i]);
        }
        let mut last = None;
        for &i in candidates {
            match cert.verify_issued_by(&self.certs[i]) {
                Ok(()) => {
                    self.memo.put(key, i);
                    return Ok(&self.certs[i]);
                }
                Err(e) => last = Some(e),
            }
        }
        let detail = last.map(|r| r.to_string()).unwrap_or_default();
        Err(Reason::new(
            "csca.signature_invalid",
            format!("no CSCA with that name verifies the certificate ({detail})"),
        ))
    }
}

/// A certificate revocation list with its original DER.
#[derive(Debug, Clone)]
pub struct Crl {
    /// The decoded list.
    pub list: CertificateList,
    der: Vec<u8>,
    tbs: Range<usize>,
    issuer: Vec<u8>,
}

impl Crl {
    /// Decode a DER CRL.
    pub fn from_der(der: &[u8]) -> Result<Self, TrustError> {
        let list = CertificateList::from_der(der).map_err(|e| TrustError::Der(e.to_string()))?;
        let tbs = first_child_range(der)?;
        let issuer = list
            .tbs_cert_list
            .issuer
            .to_der()
            .map_err(|e| TrustError::Der(e.to_string()))?;
        Ok(Crl {
            list,
            der: der.to_vec(),
            tbs,
            issuer,
        })
    }

    /// Decode every `X509 CRL` block of PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<Vec<Self>, TrustError> {
        pem_blocks(pem, "X509 CRL")?
            .iter()
            .map(|d| Self::from_der(d))
            .collect()
    }

    fn verify_by(&self, issuer: &CertEntry) -> Result<(), Reason> {
        if self.list.signature_algorithm != self.list.tbs_cert_list.signature {
            return Err(Reason::new(
                "cert.algorithm_mismatch",
                "outer and signed signature algorithms differ",
            ));
        }
        let scheme = signature_scheme(&self.list.signature_algorithm, None)?;
        let sig =
            self.list.signature.as_bytes().ok_or_else(|| {
                Reason::new("crypto.signature_invalid", "signature has unused bits")
            })?;
        verify_signature(
            issuer.cert.tbs_certificate().subject_public_key_info(),
            scheme,
            &self.der[self.tbs.clone()],
            sig,
        )
    }

    fn revocation_of(&self, cert: &CertEntry) -> Option<&Time> {
        let serial = cert.cert.tbs_certificate().serial_number().as_bytes();
        self.list
            .tbs_cert_list
            .revoked_certificates
            .as_ref()?
            .iter()
            .find(|r| r.serial_number.as_bytes() == serial)
            .map(|r| &r.revocation_date)
    }
}

/// Options for [`passive_authentication`].
#[derive(Debug, Clone, Default)]
pub struct PaOptions {
    /// Time at which to check validity when the SOD has no `signingTime` (usually "now",
    /// from the caller's clock).
    pub at: Option<DateTime<Utc>>,
}

/// Where the time used for validity checks came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// The SOD's `signingTime` signed attribute.
    SigningTime,
    /// [`PaOptions::at`].
    Supplied,
    /// Neither was available; validity was not checked.
    None,
}

/// Hash check of one data group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataGroupCheck {
    /// Data group number (1–16).
    pub number: u8,
    /// The outcome.
    pub outcome: Outcome,
}

/// The result of passive authentication, check by check.
#[derive(Debug, Clone)]
pub struct PaReport {
    /// EF.SOD could be parsed.
    pub sod: Outcome,
    /// One entry per data group supplied or listed in the SOD, ascending by number.
    pub data_groups: Vec<DataGroupCheck>,
    /// Signed attributes: content type matches and message digest is the content's hash.
    pub signed_attributes: Outcome,
    /// The SOD signature verifies with the document signer certificate.
    pub sod_signature: Outcome,
    /// The document signer certificate is signed by a CSCA in the trust store.
    pub certificate_chain: Outcome,
    /// The document signer certificate is valid at the check time.
    pub signer_validity: Outcome,
    /// The CSCA certificate is valid at the check time.
    pub csca_validity: Outcome,
    /// The document signer certificate is not on a CRL of its issuer.
    pub revocation: Outcome,
    /// The time validity was checked at.
    pub checked_at: Option<DateTime<Utc>>,
    /// Where that time came from.
    pub time_source: TimeSource,
    /// Subject of the document signer certificate.
    pub signer_subject: Option<String>,
    /// Subject of the CSCA that issued it.
    pub csca_subject: Option<String>,
}

impl PaReport {
    /// Every check with its name, in a stable order (for display and logs).
    pub fn checks(&self) -> Vec<(String, &Outcome)> {
        let mut v = vec![("sod".to_owned(), &self.sod)];
        for d in &self.data_groups {
            v.push((format!("dg{}_hash", d.number), &d.outcome));
        }
        v.extend([
            ("signed_attributes".to_owned(), &self.signed_attributes),
            ("sod_signature".to_owned(), &self.sod_signature),
            ("certificate_chain".to_owned(), &self.certificate_chain),
            ("signer_validity".to_owned(), &self.signer_validity),
            ("csca_validity".to_owned(), &self.csca_validity),
            ("revocation".to_owned(), &self.revocation),
        ]);
        v
    }

    /// Whether every check was made and passed, and at least one data group was checked.
    /// A convenience for callers that need one answer; the individual checks say why.
    pub fn all_passed(&self) -> bool {
        !self.data_groups.is_empty() && self.checks().iter().all(|(_, o)| o.is_passed())
    }

    /// Outcome of the hash check of data group `n`.
    pub fn data_group(&self, n: u8) -> Option<&Outcome> {
        self.data_groups
            .iter()
            .find(|d| d.number == n)
            .map(|d| &d.outcome)
    }
}

struct CmsCheck {
    signed_attributes: Outcome,
    signature: Outcome,
    signer: Option<CertEntry>,
    signing_time: Option<DateTime<Utc>>,
}

/// Check a SignedData's signed attributes and signature with the signer certificate it carries.
fn verify_cms(signed: &SignedContent) -> CmsCheck {
    let digest = HashAlgorithm::from_oid(&signed.digest_algorithm.oid);
    let mut signing_time = None;
    let signed_attributes = match (&signed.signed_attributes, digest) {
        (None, _) => Outcome::skipped(
            "cms.no_signed_attributes",
            "the signature covers the content directly",
        ),
        (Some(_), None) => Outcome::Failed(Reason::new(
            "crypto.unsupported_algorithm",
            format!("digest algorithm {}", signed.digest_algorithm.oid),
        )),
        (Some(_), Some(h)) => match signed.attribute_values() {
            Err(e) => Outcome::Failed(Reason::new("cms.signed_attributes", e.to_string())),
            Ok(v) => {
                signing_time = v.signing_time;
                if v.content_type != Some(signed.econtent_type) {
                    Outcome::Failed(Reason::new(
                        "cms.content_type_attribute",
                        "contentType attribute missing or different from the content",
                    ))
                } else {
                    match v.message_digest {
                        None => Outcome::Failed(Reason::new(
                            "cms.message_digest_missing",
                            "no messageDigest attribute",
                        )),
                        Some(d) if d == h.digest(&signed.econtent) => Outcome::Passed,
                        Some(_) => Outcome::Failed(Reason::new(
                            "cms.message_digest_mismatch",
                            "messageDigest is not the hash of the content",
                        )),
                    }
                }
            }
        },
    };
    let signer = signed
        .certificates
        .iter()
        .filter_map(|d| CertEntry::from_der(d).ok())
        .find(|c| c.matches(&signed.signer_id));
    let signature = match &signer {
        None => Outcome::Failed(Reason::new(
            "cms.signer_certificate_missing",
            "no certificate in the SignedData matches the signer identifier",
        )),
        Some(cert) => {
            let message = signed
                .signed_attributes
                .as_deref()
                .unwrap_or(&signed.econtent);
            Outcome::from_result(
                signature_scheme(&signed.signature_algorithm, digest).and_then(|scheme| {
                    verify_signature(
                        cert.cert.tbs_certificate().subject_public_key_info(),
                        scheme,
                        message,
                        &signed.signature,
                    )
                }),
            )
        }
    };
    CmsCheck {
        signed_attributes,
        signature,
        signer,
        signing_time,
    }
}

fn not_checked_report(sod: Outcome, reason: &str) -> PaReport {
    let skip = || Outcome::skipped("pa.previous_step_failed", reason.to_owned());
    PaReport {
        sod,
        data_groups: Vec::new(),
        signed_attributes: skip(),
        sod_signature: skip(),
        certificate_chain: skip(),
        signer_validity: skip(),
        csca_validity: skip(),
        revocation: skip(),
        checked_at: None,
        time_source: TimeSource::None,
        signer_subject: None,
        csca_subject: None,
    }
}

/// Run passive authentication over EF.SOD and the data groups read from the chip
/// (`(number, whole file bytes)`), against the trusted CSCAs and any CRLs.
pub fn passive_authentication(
    sod_bytes: &[u8],
    data_groups: &[(u8, &[u8])],
    trust: &TrustStore,
    crls: &[Crl],
    options: &PaOptions,
) -> PaReport {
    let sod = match parse_sod(sod_bytes) {
        Ok(s) => s,
        Err(e) => {
            return not_checked_report(
                Outcome::Failed(Reason::new(e.code(), e.to_string())),
                "EF.SOD could not be parsed",
            );
        }
    };

    // Data-group hashes.
    let mut numbers: Vec<u8> = data_groups
        .iter()
        .map(|(n, _)| *n)
        .chain(sod.lds.data_group_hashes.iter().map(|(n, _)| *n))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let dg_checks = numbers
        .into_iter()
        .map(|n| {
            let supplied = data_groups.iter().find(|(m, _)| *m == n).map(|(_, b)| *b);
            let outcome = match (supplied, sod.lds.hash_of(n)) {
                (Some(bytes), Some(expected)) => {
                    if sod.lds.hash_algorithm.digest(bytes) == expected {
                        Outcome::Passed
                    } else {
                        Outcome::Failed(Reason::new(
                            "dg.hash_mismatch",
                            format!(
                                "DG{n} does not match its {} hash in the SOD",
                                sod.lds.hash_algorithm.name()
                            ),
                        ))
                    }
                }
                (Some(_), None) => Outcome::Failed(Reason::new(
                    "dg.not_in_sod",
                    format!("DG{n} was read but the SOD has no hash for it"),
                )),
                (None, _) => Outcome::skipped("dg.not_read", format!("DG{n} was not supplied")),
            };
            DataGroupCheck { number: n, outcome }
        })
        .collect();

    let cms = verify_cms(&sod.signed);
    let (checked_at, time_source) = match (cms.signing_time, options.at) {
        (Some(t), _) => (Some(t), TimeSource::SigningTime),
        (None, Some(t)) => (Some(t), TimeSource::Supplied),
        (None, None) => (None, TimeSource::None),
    };
    let no_time = || {
        Outcome::skipped(
            "pa.no_time",
            "no signing time in the SOD and no time supplied",
        )
    };

    let mut report = PaReport {
        sod: Outcome::Passed,
        data_groups: dg_checks,
        signed_attributes: cms.signed_attributes,
        sod_signature: cms.signature,
        certificate_chain: Outcome::skipped("pa.no_signer", "no document signer certificate"),
        signer_validity: Outcome::skipped("pa.no_signer", "no document signer certificate"),
        csca_validity: Outcome::skipped("pa.no_signer", "no document signer certificate"),
        revocation: Outcome::skipped("pa.no_signer", "no document signer certificate"),
        checked_at,
        time_source,
        signer_subject: None,
        csca_subject: None,
    };
    let Some(ds) = cms.signer else {
        return report;
    };
    report.signer_subject = Some(ds.subject());
    report.signer_validity = match checked_at {
        Some(t) => Outcome::from_result(ds.validity_at(t, "document signer")),
        None => no_time(),
    };
    let csca = match trust.find_issuer(&ds) {
        Ok(c) => {
            report.certificate_chain = Outcome::Passed;
            c
        }
        Err(r) => {
            let skip = format!("document signer not chained to a trusted CSCA ({})", r.code);
            report.certificate_chain = Outcome::Failed(r);
            report.csca_validity = Outcome::skipped("pa.no_csca", skip.clone());
            report.revocation = Outcome::skipped("pa.no_csca", skip);
            return report;
        }
    };
    report.csca_subject = Some(csca.subject());
    report.csca_validity = match checked_at {
        Some(t) => Outcome::from_result(csca.validity_at(t, "CSCA")),
        None => no_time(),
    };

    let relevant: Vec<&Crl> = crls.iter().filter(|c| c.issuer == ds.issuer).collect();
    report.revocation = if relevant.is_empty() {
        Outcome::skipped(
            "crl.none_for_issuer",
            "no CRL from the document signer's issuer",
        )
    } else {
        let mut verified = 0;
        let mut revoked = None;
        for crl in relevant {
            let key = VerifiedMemo::key(&[b"crl", &crl.der, &csca.der]);
            let ok = trust.memo.get(&key).is_some() || {
                let ok = crl.verify_by(csca).is_ok();
                if ok {
                    trust.memo.put(key, 0);
                }
                ok
            };
            if ok {
                verified += 1;
                if let Some(t) = crl.revocation_of(&ds) {
                    revoked = Some(*t);
                }
            }
        }
        match (revoked, verified) {
            (Some(t), _) => Outcome::Failed(Reason::new(
                "cert.revoked",
                format!("document signer certificate revoked on {t}"),
            )),
            (None, 0) => Outcome::skipped(
                "crl.signature_invalid",
                "no CRL from the issuer has a valid signature",
            ),
            (None, _) => Outcome::Passed,
        }
    };
    report
}
