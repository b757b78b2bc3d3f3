//! Hash and signature primitives for passive authentication: the hash algorithms ICAO 9303
//! allows, and signature verification for RSA (PKCS#1 v1.5 and PSS) and ECDSA over P-256,
//! P-384, P-521, brainpoolP256r1 and brainpoolP384r1, with DER (`ecdsa-with-SHA*`) or plain
//! (BSI TR-03111 `ecdsa-plain-SHA*`) signature encodings.

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use rsa::pkcs1::DecodeRsaPublicKey;
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use signature::hazmat::PrehashVerifier;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::report::Reason;
use crate::tlv::{TlvReader, read_single};

/// A hash algorithm allowed in ICAO 9303 security objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-1 (legacy documents only).
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.4");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// `rsaEncryption`.
pub const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-RSASSA-PSS`.
pub const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
/// `id-ecPublicKey`.
pub const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// P-256 (`prime256v1`).
pub const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// P-384 (`secp384r1`).
pub const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// P-521 (`secp521r1`).
pub const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
/// brainpoolP256r1.
pub const OID_BP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.7");
/// brainpoolP384r1.
pub const OID_BP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.11");

impl HashAlgorithm {
    /// The algorithm for a digest OID.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Some(match *oid {
            OID_SHA1 => HashAlgorithm::Sha1,
            OID_SHA224 => HashAlgorithm::Sha224,
            OID_SHA256 => HashAlgorithm::Sha256,
            OID_SHA384 => HashAlgorithm::Sha384,
            OID_SHA512 => HashAlgorithm::Sha512,
            _ => return None,
        })
    }

    /// The digest OID.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            HashAlgorithm::Sha1 => OID_SHA1,
            HashAlgorithm::Sha224 => OID_SHA224,
            HashAlgorithm::Sha256 => OID_SHA256,
            HashAlgorithm::Sha384 => OID_SHA384,
            HashAlgorithm::Sha512 => OID_SHA512,
        }
    }

    /// Human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha1 => "SHA-1",
            HashAlgorithm::Sha224 => "SHA-224",
            HashAlgorithm::Sha256 => "SHA-256",
            HashAlgorithm::Sha384 => "SHA-384",
            HashAlgorithm::Sha512 => "SHA-512",
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlgorithm::Sha1 => 20,
            HashAlgorithm::Sha224 => 28,
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// Hash `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha1 => Sha1::digest(data).to_vec(),
            HashAlgorithm::Sha224 => Sha224::digest(data).to_vec(),
            HashAlgorithm::Sha256 => Sha256::digest(data).to_vec(),
            HashAlgorithm::Sha384 => Sha384::digest(data).to_vec(),
            HashAlgorithm::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// A signature scheme resolved from an algorithm identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    /// RSASSA-PKCS1-v1_5 with the hash.
    RsaPkcs1(HashAlgorithm),
    /// RSASSA-PSS with the hash (also used for MGF1) and salt length.
    RsaPss {
        /// Message hash and MGF1 hash.
        hash: HashAlgorithm,
        /// Salt length in bytes.
        salt_len: usize,
    },
    /// ECDSA with the hash; `plain` for the BSI r‖s encoding, otherwise DER.
    Ecdsa {
        /// Message hash.
        hash: HashAlgorithm,
        /// Plain (r‖s) rather than DER signature encoding.
        plain: bool,
    },
}

fn unsupported(what: &str, oid: &ObjectIdentifier) -> Reason {
    Reason::new("crypto.unsupported_algorithm", format!("{what} {oid}"))
}

/// Resolve a signature algorithm identifier. `digest` is the separately stated digest
/// algorithm (CMS `digestAlgorithm`), used when the signature algorithm names only the key
/// type (`rsaEncryption`, `id-ecPublicKey`), as some document signers do.
pub fn signature_scheme(
    alg: &AlgorithmIdentifierOwned,
    digest: Option<HashAlgorithm>,
) -> Result<SignatureScheme, Reason> {
    use HashAlgorithm::*;
    let need_digest = || {
        digest.ok_or_else(|| Reason::new("crypto.no_digest", "signature algorithm names no hash"))
    };
    if alg.oid != OID_RSA_PSS && alg.parameters.as_ref().is_some_and(|p| !p.is_null()) {
        return Err(Reason::new(
            "crypto.bad_parameters",
            format!("{} takes no parameters other than NULL", alg.oid),
        ));
    }
    let arcs: Vec<u32> = alg.oid.arcs().collect();
    let scheme = match arcs.as_slice() {
        [1, 2, 840, 113549, 1, 1, 1] => SignatureScheme::RsaPkcs1(need_digest()?),
        [1, 2, 840, 113549, 1, 1, n] => match n {
            5 => SignatureScheme::RsaPkcs1(Sha1),
            14 => SignatureScheme::RsaPkcs1(Sha224),
            11 => SignatureScheme::RsaPkcs1(Sha256),
            12 => SignatureScheme::RsaPkcs1(Sha384),
            13 => SignatureScheme::RsaPkcs1(Sha512),
            10 => pss_params(alg)?,
            _ => return Err(unsupported("signature algorithm", &alg.oid)),
        },
        [1, 2, 840, 10045, 2, 1] => SignatureScheme::Ecdsa {
            hash: need_digest()?,
            plain: false,
        },
        [1, 2, 840, 10045, 4, 1] => SignatureScheme::Ecdsa {
            hash: Sha1,
            plain: false,
        },
        [1, 2, 840, 10045, 4, 3, n] => SignatureScheme::Ecdsa {
            hash: match n {
                1 => Sha224,
                2 => Sha256,
                3 => Sha384,
                4 => Sha512,
                _ => return Err(unsupported("signature algorithm", &alg.oid)),
            },
            plain: false,
        },
        [0, 4, 0, 127, 0, 7, 1, 1, 4, 1, n] => SignatureScheme::Ecdsa {
            hash: match n {
                1 => Sha1,
                2 => Sha224,
                3 => Sha256,
                4 => Sha384,
                5 => Sha512,
                _ => return Err(unsupported("signature algorithm", &alg.oid)),
            },
            plain: true,
        },
        _ => return Err(unsupported("signature algorithm", &alg.oid)),
    };
    Ok(scheme)
}

fn hash_from_alg_id(seq: &[u8]) -> Result<HashAlgorithm, Reason> {
    let bad = || Reason::new("crypto.bad_pss_parameters", "malformed hash algorithm");
    let t = read_single(seq, 0x30).map_err(|_| bad())?;
    let mut r = t.children();
    let oid = r.read_tag(0x06).map_err(|_| bad())?;
    let oid = ObjectIdentifier::from_bytes(oid.value).map_err(|_| bad())?;
    match r.next_tlv().map_err(|_| bad())? {
        None => {}
        Some(p) if p.tag == 0x05 && p.value.is_empty() && r.is_empty() => {}
        Some(_) => return Err(bad()),
    }
    HashAlgorithm::from_oid(&oid).ok_or_else(|| unsupported("PSS hash", &oid))
}

/// Read RSASSA-PSS-params; defaults are SHA-1, MGF1-SHA-1, salt 20 (RFC 8017).
fn pss_params(alg: &AlgorithmIdentifierOwned) -> Result<SignatureScheme, Reason> {
    let bad = |d: &str| Reason::new("crypto.bad_pss_parameters", d);
    let mut hash = HashAlgorithm::Sha1;
    let mut mgf_hash = HashAlgorithm::Sha1;
    let mut salt_len = 20usize;
    if let Some(params) = &alg.parameters {
        let der = params.to_der().map_err(|_| bad("encoding"))?;
        let seq = read_single(&der, 0x30).map_err(|_| bad("not a SEQUENCE"))?;
        let mut r: TlvReader<'_> = seq.children();
        while let Some(f) = r.next_tlv().map_err(|_| bad("TLV"))? {
            match f.tag {
                0xA3 => {
                    if f.value != [0x02, 0x01, 0x01] {
                        return Err(bad("trailer field must be 1"));
                    }
                }
                0xA0 => hash = hash_from_alg_id(f.value)?,
                0xA1 => {
                    let m = read_single(f.value, 0x30).map_err(|_| bad("MGF"))?;
                    let mut mr = m.children();
                    let oid = mr.read_tag(0x06).map_err(|_| bad("MGF OID"))?;
                    if ObjectIdentifier::from_bytes(oid.value).ok() != Some(OID_MGF1) {
                        return Err(bad("mask generation function is not MGF1"));
                    }
                    let h = mr.read_tag(0x30).map_err(|_| bad("MGF1 hash"))?;
                    if !mr.is_empty() {
                        return Err(bad("trailing data in MGF parameters"));
                    }
                    mgf_hash = hash_from_alg_id(h.raw)?;
                }
                0xA2 => {
                    let i = read_single(f.value, 0x02).map_err(|_| bad("salt length"))?;
                    if i.value.is_empty() || i.value.len() > 2 || i.value[0] & 0x80 != 0 {
                        return Err(bad("salt length"));
                    }
                    salt_len = i
                        .value
                        .iter()
                        .fold(0usize, |a, &b| (a << 8) | usize::from(b));
                }
                _ => return Err(bad("unknown field")),
            }
        }
    }
    if mgf_hash != hash {
        return Err(bad("MGF1 hash differs from the message hash"));
    }
    Ok(SignatureScheme::RsaPss { hash, salt_len })
}

fn bad_sig(detail: impl Into<String>) -> Reason {
    Reason::new("crypto.signature_invalid", detail)
}

macro_rules! ecdsa_verify {
    ($curve:ty, $point:expr, $prehash:expr, $sig:expr, $plain:expr) => {{
        let vk = ecdsa::VerifyingKey::<$curve>::from_sec1_bytes($point)
            .map_err(|_| Reason::new("crypto.bad_public_key", "invalid EC point"))?;
        let sig = if $plain {
            ecdsa::Signature::<$curve>::from_slice($sig)
        } else {
            ecdsa::Signature::<$curve>::from_der($sig)
        }
        .map_err(|_| bad_sig("malformed ECDSA signature"))?;
        vk.verify_prehash($prehash, &sig)
            .map_err(|_| bad_sig("ECDSA signature does not verify"))
    }};
}

/// Verify `sig` over `message` with the public key `spki` under `scheme`.
pub fn verify_signature(
    spki: &SubjectPublicKeyInfoOwned,
    scheme: SignatureScheme,
    message: &[u8],
    sig: &[u8],
) -> Result<(), Reason> {
    let key_bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| Reason::new("crypto.bad_public_key", "public key bit string"))?;
    match scheme {
        SignatureScheme::RsaPkcs1(hash) | SignatureScheme::RsaPss { hash, .. } => {
            if spki.algorithm.oid != OID_RSA && spki.algorithm.oid != OID_RSA_PSS {
                return Err(Reason::new(
                    "crypto.key_mismatch",
                    "RSA signature with a non-RSA key",
                ));
            }
            let key = rsa::RsaPublicKey::from_pkcs1_der(key_bytes)
                .map_err(|e| Reason::new("crypto.bad_public_key", format!("RSA key: {e}")))?;
            let hashed = hash.digest(message);
            let result = match scheme {
                SignatureScheme::RsaPss { salt_len, .. } => match hash {
                    HashAlgorithm::Sha1 => {
                        key.verify(rsa::Pss::<Sha1>::new_with_salt(salt_len), &hashed, sig)
                    }
                    HashAlgorithm::Sha224 => {
                        key.verify(rsa::Pss::<Sha224>::new_with_salt(salt_len), &hashed, sig)
                    }
                    HashAlgorithm::Sha256 => {
                        key.verify(rsa::Pss::<Sha256>::new_with_salt(salt_len), &hashed, sig)
                    }
                    HashAlgorithm::Sha384 => {
                        key.verify(rsa::Pss::<Sha384>::new_with_salt(salt_len), &hashed, sig)
                    }
                    HashAlgorithm::Sha512 => {
                        key.verify(rsa::Pss::<Sha512>::new_with_salt(salt_len), &hashed, sig)
                    }
                },
                _ => {
                    let padding = match hash {
                        HashAlgorithm::Sha1 => rsa::Pkcs1v15Sign::new::<Sha1>(),
                        HashAlgorithm::Sha224 => rsa::Pkcs1v15Sign::new::<Sha224>(),
                        HashAlgorithm::Sha256 => rsa::Pkcs1v15Sign::new::<Sha256>(),
                        HashAlgorithm::Sha384 => rsa::Pkcs1v15Sign::new::<Sha384>(),
                        HashAlgorithm::Sha512 => rsa::Pkcs1v15Sign::new::<Sha512>(),
                    };
                    key.verify(padding, &hashed, sig)
                }
            };
            result.map_err(|_| bad_sig("RSA signature does not verify"))
        }
        SignatureScheme::Ecdsa { hash, plain } => {
            if spki.algorithm.oid != OID_EC_PUBLIC_KEY {
                return Err(Reason::new(
                    "crypto.key_mismatch",
                    "ECDSA signature with a non-EC key",
                ));
            }
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or_else(|| {
                    Reason::new(
                        "crypto.unsupported_curve",
                        "EC key without a named curve (explicit parameters are not supported)",
                    )
                })?;
            let prehash = hash.digest(message);
            match curve {
                OID_P256 => ecdsa_verify!(p256::NistP256, key_bytes, &prehash, sig, plain),
                OID_P384 => ecdsa_verify!(p384::NistP384, key_bytes, &prehash, sig, plain),
                OID_P521 => ecdsa_verify!(p521::NistP521, key_bytes, &prehash, sig, plain),
                OID_BP256R1 => {
                    ecdsa_verify!(bp256::BrainpoolP256r1, key_bytes, &prehash, sig, plain)
                }
                OID_BP384R1 => {
                    ecdsa_verify!(bp384::BrainpoolP384r1, key_bytes, &prehash, sig, plain)
                }
                other => Err(unsupported("curve", &other)),
            }
        }
    }
}

/// Decode a SubjectPublicKeyInfo (used by tests and the benchmark).
pub fn decode_spki(der: &[u8]) -> Result<SubjectPublicKeyInfoOwned, Reason> {
    SubjectPublicKeyInfoOwned::from_der(der)
        .map_err(|e| Reason::new("crypto.bad_public_key", e.to_string()))
}

#[cfg(test)]
mod curve_tests {
    //! The fixtures cover RSA, RSA-PSS, P-256 and brainpoolP256r1 end to end; these tests sign
    //! with the other curves the verifier accepts (P-384, P-521, brainpoolP384r1), in DER and in
    //! plain r‖s form, and check that a changed message or a key on another curve is refused.
    use super::*;
    use der::asn1::{Any, BitString};
    use signature::hazmat::PrehashSigner;

    fn spki(curve: ObjectIdentifier, point: &[u8]) -> SubjectPublicKeyInfoOwned {
        SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: OID_EC_PUBLIC_KEY,
                parameters: Some(Any::from(&curve)),
            },
            subject_public_key: BitString::from_bytes(point).unwrap(),
        }
    }

    macro_rules! curve_case {
        ($name:ident, $curve:ty, $oid:expr, $hash:expr, $len:expr) => {
            #[test]
            fn $name() {
                let mut secret = [0u8; $len];
                secret[$len - 1] = 0x2a;
                secret[3] = 0x11;
                let sk = ecdsa::SigningKey::<$curve>::from_slice(&secret).unwrap();
                let point = sk.verifying_key().to_sec1_point(false);
                let key = spki($oid, point.as_bytes());
                let message = b"signed attributes of an SOD";
                let sig: ecdsa::Signature<$curve> =
                    sk.sign_prehash(&$hash.digest(message)).unwrap();
                for plain in [false, true] {
                    let bytes = if plain {
                        sig.to_bytes().to_vec()
                    } else {
                        sig.to_der().as_bytes().to_vec()
                    };
                    let scheme = SignatureScheme::Ecdsa { hash: $hash, plain };
                    verify_signature(&key, scheme, message, &bytes).unwrap();
                    let refused =
                        verify_signature(&key, scheme, b"signed attributes of another SOD", &bytes)
                            .unwrap_err();
                    assert_eq!(refused.code, "crypto.signature_invalid");
                }
                // The same point announced on another curve is not a valid key there.
                let wrong = spki(OID_P256, point.as_bytes());
                let scheme = SignatureScheme::Ecdsa {
                    hash: $hash,
                    plain: false,
                };
                assert!(
                    verify_signature(&wrong, scheme, message, &sig.to_der().as_bytes()).is_err()
                );
            }
        };
    }

    curve_case!(
        p384_sha384,
        p384::NistP384,
        OID_P384,
        HashAlgorithm::Sha384,
        48
    );
    curve_case!(
        p521_sha512,
        p521::NistP521,
        OID_P521,
        HashAlgorithm::Sha512,
        66
    );
    curve_case!(
        brainpool_p384_sha384,
        bp384::BrainpoolP384r1,
        OID_BP384R1,
        HashAlgorithm::Sha384,
        48
    );
}
