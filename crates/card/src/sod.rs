//! EF.SOD, the document security object: the `0x77` wrapper around a CMS SignedData whose
//! encapsulated content is the LDS security object (the data-group hashes). The same CMS
//! reading serves ICAO master lists (see [`crate::pa::TrustStore::from_master_list`]).
//!
//! Typed decoding uses the `cms` crate; the bytes that signatures cover (signed attributes,
//! certificates' to-be-signed parts) are taken verbatim from the input with the TLV reader,
//! never re-encoded, so that a valid signature over a not-quite-DER encoding still verifies.

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::ObjectIdentifier;
use der::{Decode, Tag, Tagged};
use spki::AlgorithmIdentifierOwned;

use crate::crypto::HashAlgorithm;
use crate::tlv::{TlvError, TlvReader, read_single};

/// Largest EF.SOD or master list accepted, in bytes.
pub const MAX_SOD_LEN: usize = 256 * 1024;
/// Largest master list accepted, in bytes.
pub const MAX_MASTER_LIST_LEN: usize = 8 * 1024 * 1024;

/// `id-signedData`.
pub const OID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// `id-icao-mrtd-security-ldsSecurityObject`.
pub const OID_LDS_SECURITY_OBJECT: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.23.136.1.1.1");
/// `id-icao-cscaMasterList`.
pub const OID_CSCA_MASTER_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.136.1.1.2");
/// CMS `contentType` attribute.
pub const OID_ATTR_CONTENT_TYPE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
/// CMS `messageDigest` attribute.
pub const OID_ATTR_MESSAGE_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// CMS `signingTime` attribute.
pub const OID_ATTR_SIGNING_TIME: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");

/// Why an EF.SOD (or master list) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SodError {
    /// Input larger than the limit.
    #[error("input is {0} bytes, more than the limit")]
    TooLarge(usize),
    /// TLV structure broken (or the `0x77` wrapper missing).
    #[error("TLV: {0}")]
    Tlv(#[from] TlvError),
    /// ASN.1 decoding failed.
    #[error("ASN.1: {0}")]
    Der(String),
    /// The ContentInfo is not SignedData.
    #[error("content is not CMS SignedData")]
    NotSignedData,
    /// The encapsulated content type is not the expected one.
    #[error("encapsulated content type is {0}")]
    ContentType(String),
    /// No encapsulated content (detached signature).
    #[error("no encapsulated content")]
    NoContent,
    /// Not exactly one SignerInfo.
    #[error("expected one signer, found {0}")]
    SignerCount(usize),
    /// The security object names a hash algorithm this crate does not know.
    #[error("unsupported hash algorithm {0}")]
    UnsupportedHash(String),
    /// The LDS security object is malformed.
    #[error("LDS security object: {0}")]
    Lds(&'static str),
    /// A structural rule of CMS SignedData is broken (versions, digest algorithm list,
    /// algorithm parameters) in a part that signatures do not cover.
    #[error("SignedData structure: {0}")]
    Structure(&'static str),
}

impl SodError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SodError::TooLarge(_) => "sod.too_large",
            SodError::Tlv(e) => e.code(),
            SodError::Der(_) => "sod.der",
            SodError::NotSignedData => "sod.not_signed_data",
            SodError::ContentType(_) => "sod.content_type",
            SodError::NoContent => "sod.no_content",
            SodError::SignerCount(_) => "sod.signer_count",
            SodError::UnsupportedHash(_) => "sod.unsupported_hash",
            SodError::Lds(_) => "sod.lds_object",
            SodError::Structure(_) => "sod.structure",
        }
    }
}

fn der_err(e: der::Error) -> SodError {
    SodError::Der(e.to_string())
}

fn oid_err(e: impl std::fmt::Display) -> SodError {
    SodError::Der(e.to_string())
}

/// A CMS SignedData with one signer, with the bytes that its signatures cover.
#[derive(Debug, Clone)]
pub struct SignedContent {
    /// Encapsulated content type.
    pub econtent_type: ObjectIdentifier,
    /// Encapsulated content (the OCTET STRING's bytes).
    pub econtent: Vec<u8>,
    /// Certificates carried in the SignedData, as their original DER.
    pub certificates: Vec<Vec<u8>>,
    /// The signer's digest algorithm.
    pub digest_algorithm: AlgorithmIdentifierOwned,
    /// The signer's signature algorithm.
    pub signature_algorithm: AlgorithmIdentifierOwned,
    /// The signature value.
    pub signature: Vec<u8>,
    /// How the signer's certificate is identified.
    pub signer_id: SignerIdentifier,
    /// Signed attributes as signed: the original bytes with the `[0]` tag replaced by SET.
    pub signed_attributes: Option<Vec<u8>>,
}

/// Values read from the signed attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedAttributeValues {
    /// `contentType`.
    pub content_type: Option<ObjectIdentifier>,
    /// `messageDigest`.
    pub message_digest: Option<Vec<u8>>,
    /// `signingTime`.
    pub signing_time: Option<chrono::DateTime<chrono::Utc>>,
}

impl SignedContent {
    /// Read the attributes this crate checks out of the signed attributes.
    pub fn attribute_values(&self) -> Result<SignedAttributeValues, SodError> {
        let mut out = SignedAttributeValues::default();
        let Some(raw) = &self.signed_attributes else {
            return Ok(out);
        };
        let set = read_single(raw, 0x31)?;
        let mut r = set.children();
        while let Some(attr) = r.next_tlv()? {
            let mut a = attr.expect(0x30)?.children();
            let oid = ObjectIdentifier::from_bytes(a.read_tag(0x06)?.value).map_err(oid_err)?;
            let values = a.read_tag(0x31)?;
            let Some(first) = values.children().next_tlv()? else {
                continue;
            };
            match oid {
                OID_ATTR_CONTENT_TYPE => {
                    out.content_type = Some(
                        ObjectIdentifier::from_bytes(first.expect(0x06)?.value).map_err(oid_err)?,
                    );
                }
                OID_ATTR_MESSAGE_DIGEST => {
                    out.message_digest = Some(first.expect(0x04)?.value.to_vec());
                }
                OID_ATTR_SIGNING_TIME => {
                    let t = x509_cert::time::Time::from_der(first.raw).map_err(der_err)?;
                    out.signing_time = crate::pa::to_chrono(&t);
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Read a DER ContentInfo holding a SignedData with one signer and the expected content type.
pub fn parse_signed_content(
    der: &[u8],
    expected: ObjectIdentifier,
) -> Result<SignedContent, SodError> {
    let ci = ContentInfo::from_der(der).map_err(der_err)?;
    if ci.content_type != OID_SIGNED_DATA {
        return Err(SodError::NotSignedData);
    }
    let sd: SignedData = ci.content.decode_as().map_err(der_err)?;
    if sd.encap_content_info.econtent_type != expected {
        return Err(SodError::ContentType(
            sd.encap_content_info.econtent_type.to_string(),
        ));
    }
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .filter(|a| a.tag() == Tag::OctetString)
        .ok_or(SodError::NoContent)?
        .value()
        .to_vec();
    let signers = sd.signer_infos.0.len();
    let si = match sd.signer_infos.0.iter().next() {
        Some(si) if signers == 1 => si,
        _ => return Err(SodError::SignerCount(signers)),
    };
    // Parts no signature covers are held to the rules, so that altering them is noticed.
    use cms::content_info::CmsVersion;
    if !matches!(sd.version, CmsVersion::V1 | CmsVersion::V3) {
        return Err(SodError::Structure("SignedData version must be 1 or 3"));
    }
    let si_version_ok = match si.sid {
        SignerIdentifier::IssuerAndSerialNumber(_) => si.version == CmsVersion::V1,
        SignerIdentifier::SubjectKeyIdentifier(_) => si.version == CmsVersion::V3,
    };
    if !si_version_ok {
        return Err(SodError::Structure(
            "SignerInfo version does not match its identifier",
        ));
    }
    if !sd
        .digest_algorithms
        .iter()
        .any(|a| a.oid == si.digest_alg.oid)
    {
        return Err(SodError::Structure(
            "signer's digest algorithm not in digestAlgorithms",
        ));
    }
    for alg in sd.digest_algorithms.iter().chain([&si.digest_alg]) {
        if alg.parameters.as_ref().is_some_and(|p| !p.is_null()) {
            return Err(SodError::Structure(
                "digest algorithm parameters must be absent or NULL",
            ));
        }
    }

    // Raw walk for the exact bytes: ContentInfo → [0] → SignedData.
    let ci_t = read_single(der, 0x30)?;
    let mut cr = ci_t.children();
    cr.read_tag(0x06)?;
    let sd_t = cr.read_tag(0xA0)?.children().read_tag(0x30)?;
    let mut sr = sd_t.children();
    sr.read_tag(0x02)?;
    sr.read_tag(0x31)?;
    sr.read_tag(0x30)?;
    let mut certificates = Vec::new();
    let mut signer_set = None;
    while let Some(t) = sr.next_tlv()? {
        match t.tag {
            0xA0 => {
                let mut c = t.children();
                while let Some(cert) = c.next_tlv()? {
                    if cert.tag == 0x30 && certificates.len() < 16 {
                        certificates.push(cert.raw.to_vec());
                    }
                }
            }
            0x31 => signer_set = Some(t),
            _ => {}
        }
    }
    let signer_set = signer_set.ok_or(SodError::SignerCount(0))?;
    let mut sir = signer_set.children().read_tag(0x30)?.children();
    sir.read_tag(0x02)?;
    sir.read()?; // sid
    sir.read_tag(0x30)?; // digestAlgorithm
    let signed_attributes = match sir.next_tlv()? {
        Some(t) if t.tag == 0xA0 => {
            let mut v = t.raw.to_vec();
            v[0] = 0x31;
            Some(v)
        }
        _ => None,
    };

    Ok(SignedContent {
        econtent_type: expected,
        econtent,
        certificates,
        digest_algorithm: si.digest_alg.clone(),
        signature_algorithm: si.signature_algorithm.clone(),
        signature: si.signature.as_bytes().to_vec(),
        signer_id: si.sid.clone(),
        signed_attributes,
    })
}

/// The LDS security object: which hash, and the hash of each data group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdsSecurityObject {
    /// Version: 0 (LDS 1.7) or 1 (LDS 1.8, with version info).
    pub version: u8,
    /// Hash algorithm of the data-group hashes.
    pub hash_algorithm: HashAlgorithm,
    /// Data-group number and hash, in file order.
    pub data_group_hashes: Vec<(u8, Vec<u8>)>,
    /// LDS version from LDSVersionInfo (version 1 only).
    pub lds_version: Option<String>,
    /// Unicode version from LDSVersionInfo (version 1 only).
    pub unicode_version: Option<String>,
}

impl LdsSecurityObject {
    /// The stored hash of data group `n`.
    pub fn hash_of(&self, n: u8) -> Option<&[u8]> {
        self.data_group_hashes
            .iter()
            .find(|(m, _)| *m == n)
            .map(|(_, h)| h.as_slice())
    }
}

fn small_int(v: &[u8]) -> Result<u8, SodError> {
    match v {
        [n] if *n < 0x80 => Ok(*n),
        _ => Err(SodError::Lds("integer out of range")),
    }
}

/// Parse the LDS security object (the SOD's encapsulated content).
pub fn parse_lds_security_object(der: &[u8]) -> Result<LdsSecurityObject, SodError> {
    let seq = read_single(der, 0x30)?;
    let mut r = seq.children();
    let version = small_int(r.read_tag(0x02)?.value)?;
    if version > 1 {
        return Err(SodError::Lds("unknown version"));
    }
    let alg = r.read_tag(0x30)?;
    let oid =
        ObjectIdentifier::from_bytes(alg.children().read_tag(0x06)?.value).map_err(oid_err)?;
    let hash_algorithm =
        HashAlgorithm::from_oid(&oid).ok_or_else(|| SodError::UnsupportedHash(oid.to_string()))?;
    let list = r.read_tag(0x30)?;
    let mut data_group_hashes: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut lr = list.children();
    while let Some(e) = lr.next_tlv()? {
        let mut er = e.expect(0x30)?.children();
        let n = small_int(er.read_tag(0x02)?.value)?;
        let h = er.read_tag(0x04)?.value;
        if !(1..=16).contains(&n) {
            return Err(SodError::Lds("data group number out of range"));
        }
        if data_group_hashes.iter().any(|(m, _)| *m == n) {
            return Err(SodError::Lds("data group listed twice"));
        }
        if h.len() != hash_algorithm.output_len() {
            return Err(SodError::Lds("hash length does not match the algorithm"));
        }
        data_group_hashes.push((n, h.to_vec()));
    }
    let (mut lds_version, mut unicode_version) = (None, None);
    if let Some(vi) = r.next_tlv()? {
        let mut vr: TlvReader<'_> = vi.expect(0x30)?.children();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        lds_version = Some(text(vr.read_tag(0x13)?.value));
        unicode_version = Some(text(vr.read_tag(0x13)?.value));
    }
    Ok(LdsSecurityObject {
        version,
        hash_algorithm,
        data_group_hashes,
        lds_version,
        unicode_version,
    })
}

/// A parsed EF.SOD.
#[derive(Debug, Clone)]
pub struct Sod {
    /// The data-group hashes.
    pub lds: LdsSecurityObject,
    /// The CMS content and its signer.
    pub signed: SignedContent,
}

/// Parse EF.SOD: strip the `0x77` wrapper, read the SignedData and the LDS security object.
pub fn parse_sod(data: &[u8]) -> Result<Sod, SodError> {
    if data.len() > MAX_SOD_LEN {
        return Err(SodError::TooLarge(data.len()));
    }
    let wrapper = read_single(data, 0x77)?;
    let signed = parse_signed_content(wrapper.value, OID_LDS_SECURITY_OBJECT)?;
    let lds = parse_lds_security_object(&signed.econtent)?;
    Ok(Sod { lds, signed })
}

/// Encode an LDS security object (version 0 when `lds_version` is `None`), for fixtures.
pub fn encode_lds_security_object(
    hash: HashAlgorithm,
    hashes: &[(u8, Vec<u8>)],
    lds_version: Option<(&str, &str)>,
) -> Vec<u8> {
    use crate::tlv::tlv;
    let version = u8::from(lds_version.is_some());
    let mut body = tlv(0x02, &[version]);
    let oid = hash.oid();
    body.extend(tlv(0x30, &tlv(0x06, oid.as_bytes())));
    let mut list = Vec::new();
    for (n, h) in hashes {
        list.extend(tlv(0x30, &[tlv(0x02, &[*n]), tlv(0x04, h)].concat()));
    }
    body.extend(tlv(0x30, &list));
    if let Some((l, u)) = lds_version {
        body.extend(tlv(
            0x30,
            &[tlv(0x13, l.as_bytes()), tlv(0x13, u.as_bytes())].concat(),
        ));
    }
    tlv(0x30, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lds_object_round_trip() {
        let hashes = vec![(1, vec![1u8; 32]), (13, vec![2u8; 32])];
        let enc =
            encode_lds_security_object(HashAlgorithm::Sha256, &hashes, Some(("0108", "040000")));
        let lds = parse_lds_security_object(&enc).unwrap();
        assert_eq!(lds.version, 1);
        assert_eq!(lds.hash_algorithm, HashAlgorithm::Sha256);
        assert_eq!(lds.hash_of(13), Some(&[2u8; 32][..]));
        assert_eq!(lds.lds_version.as_deref(), Some("0108"));
        let enc0 = encode_lds_security_object(HashAlgorithm::Sha1, &[(2, vec![0; 20])], None);
        assert_eq!(parse_lds_security_object(&enc0).unwrap().version, 0);
        let bad = encode_lds_security_object(HashAlgorithm::Sha1, &[(2, vec![0; 32])], None);
        assert_eq!(
            parse_lds_security_object(&bad).unwrap_err().code(),
            "sod.lds_object"
        );
    }

    #[test]
    fn rejects_non_sod() {
        assert_eq!(
            parse_sod(&[0x30, 0]).unwrap_err().code(),
            "tlv.unexpected_tag"
        );
        assert_eq!(
            parse_sod(&[0x77, 2, 0x30, 0]).unwrap_err().code(),
            "sod.der"
        );
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_sod(&data);
            let mut wrapped = vec![0x77];
            let mut v = Vec::new();
            crate::tlv::write_tlv(&mut v, 0x30, &data);
            wrapped.clear();
            crate::tlv::write_tlv(&mut wrapped, 0x77, &v);
            let _ = parse_sod(&wrapped);
            let _ = parse_lds_security_object(&v);
        }
    }
}
