//! Generates the test fixtures under `crates/card/fixtures/`: a CSCA → document signer → EF.SOD
//! chain in RSA (PKCS#1 v1.5), RSA-PSS, ECDSA P-256 and ECDSA brainpoolP256r1, data groups for
//! one synthetic person, a tampered DG13, an expired and a revoked document signer with a CRL,
//! and an ICAO master list holding the four CSCAs.
//!
//! Run with `crates/card/fixtures/make.sh`. Keys come from a seeded RNG, so runs are repeatable
//! except for the RSA-PSS salt. Everything here is test material: the keys are not secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::NaiveDate;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use dancu_card::crypto::HashAlgorithm;
use dancu_card::lds::{self, Dg13, EfCom, Expiry, ImageFormat};
use dancu_card::mrz::{MrzInput, build_td1};
use dancu_card::sod::{
    OID_ATTR_CONTENT_TYPE, OID_ATTR_MESSAGE_DIGEST, OID_ATTR_SIGNING_TIME, OID_CSCA_MASTER_LIST,
    OID_LDS_SECURITY_OBJECT, OID_SIGNED_DATA, encode_lds_security_object,
};
use dancu_card::tlv::tlv;
use dancu_card::{PersonalId, Sex};
use der::asn1::{Any, BitString, ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{Decode, Encode, Tag};
use p256::elliptic_curve::Generate;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rsa::pkcs1::EncodeRsaPublicKey;
use sha2::{Digest, Sha256};
use signature::hazmat::PrehashSigner;
use spki::{
    AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey,
    SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef,
};
use x509_cert::attr::Attribute;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder, CrlBuilder};
use x509_cert::crl::RevokedCert;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, CrlNumber, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, certificate::TbsCertificate};

/// A private key of one of the four fixture algorithms.
enum Key {
    Rsa(Box<rsa::RsaPrivateKey>),
    RsaPss(Box<rsa::RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    Bp256(ecdsa::SigningKey<bp256::BrainpoolP256r1>),
}

fn oid(s: &str) -> ObjectIdentifier {
    ObjectIdentifier::from_str(s).unwrap()
}

fn ec_spki(curve: &str, point: &[u8]) -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: oid("1.2.840.10045.2.1"),
            parameters: Some(Any::encode_from(&oid(curve)).unwrap()),
        },
        subject_public_key: BitString::from_bytes(point).unwrap(),
    }
}

impl Key {
    fn generate(kind: &str, rng: &mut StdRng) -> Key {
        match kind {
            "rsa" => Key::Rsa(Box::new(rsa::RsaPrivateKey::new(rng, 2048).unwrap())),
            "rsapss" => Key::RsaPss(Box::new(rsa::RsaPrivateKey::new(rng, 2048).unwrap())),
            "p256" => Key::P256(p256::ecdsa::SigningKey::generate_from_rng(rng)),
            "bp256" => Key::Bp256(ecdsa::SigningKey::generate_from_rng(rng)),
            _ => unreachable!(),
        }
    }

    fn spki(&self) -> SubjectPublicKeyInfoOwned {
        match self {
            Key::Rsa(k) | Key::RsaPss(k) => SubjectPublicKeyInfoOwned {
                algorithm: AlgorithmIdentifierOwned {
                    oid: oid("1.2.840.113549.1.1.1"),
                    parameters: Some(Any::null()),
                },
                subject_public_key: BitString::from_bytes(
                    k.to_public_key().to_pkcs1_der().unwrap().as_bytes(),
                )
                .unwrap(),
            },
            Key::P256(k) => ec_spki("1.2.840.10045.3.1.7", &k.verifying_key().to_sec1_bytes()),
            Key::Bp256(k) => ec_spki("1.3.36.3.3.2.8.1.1.7", &k.verifying_key().to_sec1_bytes()),
        }
    }

    /// The signature AlgorithmIdentifier, always with SHA-256.
    fn algorithm(&self) -> AlgorithmIdentifierOwned {
        match self {
            Key::Rsa(_) => AlgorithmIdentifierOwned {
                oid: oid("1.2.840.113549.1.1.11"),
                parameters: Some(Any::null()),
            },
            Key::RsaPss(_) => {
                let sha256 = tlv(
                    0x30,
                    &[
                        tlv(0x06, oid("2.16.840.1.101.3.4.2.1").as_bytes()),
                        tlv(0x05, &[]),
                    ]
                    .concat(),
                );
                let mgf = tlv(
                    0x30,
                    &[
                        tlv(0x06, oid("1.2.840.113549.1.1.8").as_bytes()),
                        sha256.clone(),
                    ]
                    .concat(),
                );
                let params = tlv(
                    0x30,
                    &[
                        tlv(0xA0, &sha256),
                        tlv(0xA1, &mgf),
                        tlv(0xA2, &tlv(0x02, &[32])),
                    ]
                    .concat(),
                );
                AlgorithmIdentifierOwned {
                    oid: oid("1.2.840.113549.1.1.10"),
                    parameters: Some(Any::from_der(&params).unwrap()),
                }
            }
            Key::P256(_) | Key::Bp256(_) => AlgorithmIdentifierOwned {
                oid: oid("1.2.840.10045.4.3.2"),
                parameters: None,
            },
        }
    }

    fn sign(&self, message: &[u8], rng: &mut StdRng) -> Vec<u8> {
        let hashed = Sha256::digest(message);
        match self {
            Key::Rsa(k) => k.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &hashed).unwrap(),
            Key::RsaPss(k) => k
                .sign_with_rng(rng, rsa::Pss::<Sha256>::new_with_salt(32), &hashed)
                .unwrap(),
            Key::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign_prehash(&hashed).unwrap();
                s.to_der().as_bytes().to_vec()
            }
            Key::Bp256(k) => {
                let s: ecdsa::Signature<bp256::BrainpoolP256r1> = k.sign_prehash(&hashed).unwrap();
                s.to_der().as_bytes().to_vec()
            }
        }
    }
}

/// Adapter that lets the x509-cert builders take any of our keys: they ask it for the
/// algorithm identifier and public key, we sign the bytes they finalise.
struct Signer<'a>(&'a Key);

#[derive(Clone)]
struct PublicKey(SubjectPublicKeyInfoOwned);

impl EncodePublicKey for PublicKey {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        Ok(der::Document::encode_msg(&self.0)?)
    }
}

impl signature::Keypair for Signer<'_> {
    type VerifyingKey = PublicKey;
    fn verifying_key(&self) -> PublicKey {
        PublicKey(self.0.spki())
    }
}

impl DynSignatureAlgorithmIdentifier for Signer<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(self.0.algorithm())
    }
}

fn sign_with<B: Builder>(mut b: B, key: &Key, rng: &mut StdRng) -> B::Output {
    let signer = Signer(key);
    let tbs = b.finalize(&signer).unwrap();
    let sig = key.sign(&tbs, rng);
    b.assemble(BitString::from_bytes(&sig).unwrap(), &signer)
        .unwrap()
}

/// Certificate profile: CSCA (CA, keyCertSign + cRLSign) or document signer (digitalSignature).
struct Profile {
    issuer: Name,
    subject: Name,
    ca: bool,
    issuer_key_id: Option<Vec<u8>>,
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let ski = SubjectKeyIdentifier::try_from(spk)?;
        let mut out = vec![(&ski).to_extension(&self.subject, &[])?];
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(
                self.issuer_key_id
                    .clone()
                    .unwrap_or_else(|| ski.0.as_bytes().to_vec()),
            )?),
            ..Default::default()
        };
        out.push((&aki).to_extension(&self.subject, &[])?);
        let bc = BasicConstraints {
            ca: self.ca,
            path_len_constraint: if self.ca { Some(0) } else { None },
        };
        out.push((&bc).to_extension(&self.subject, &[])?);
        let ku = if self.ca {
            KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)
        } else {
            KeyUsage(KeyUsages::DigitalSignature.into())
        };
        out.push((&ku).to_extension(&self.subject, &[])?);
        Ok(out)
    }
}

fn time(y: u16, m: u8, d: u8) -> Time {
    Time::UtcTime(UtcTime::from_date_time(der::DateTime::new(y, m, d, 0, 0, 0).unwrap()).unwrap())
}

fn key_id(cert: &Certificate) -> Vec<u8> {
    let (_, ski) = cert
        .tbs_certificate()
        .get_extension::<SubjectKeyIdentifier>()
        .unwrap()
        .unwrap();
    ski.0.as_bytes().to_vec()
}

#[allow(clippy::too_many_arguments)]
fn make_cert(
    key: &Key,
    subject: &str,
    issuer: Option<(&Certificate, &Key)>,
    serial: u32,
    from: Time,
    to: Time,
    rng: &mut StdRng,
) -> Certificate {
    let subject = Name::from_str(subject).unwrap();
    let profile = Profile {
        issuer: issuer.map_or(subject.clone(), |(c, _)| {
            c.tbs_certificate().subject().clone()
        }),
        subject,
        ca: issuer.is_none(),
        issuer_key_id: issuer.map(|(c, _)| key_id(c)),
    };
    let b = CertificateBuilder::new(
        profile,
        SerialNumber::from(serial),
        Validity::new(from, to),
        key.spki(),
    )
    .unwrap();
    sign_with(b, issuer.map_or(key, |(_, k)| k), rng)
}

/// A CMS SignedData (DER ContentInfo) over `content`, signed by `key` whose certificate is `cert`.
fn signed_data(
    content_type: ObjectIdentifier,
    content: &[u8],
    cert: &Certificate,
    key: &Key,
    signing_time: Time,
    rng: &mut StdRng,
) -> Vec<u8> {
    let sha256 = AlgorithmIdentifierOwned {
        oid: HashAlgorithm::Sha256.oid(),
        parameters: None,
    };
    let attr = |o: ObjectIdentifier, v: Any| Attribute {
        oid: o,
        values: SetOfVec::try_from(vec![v]).unwrap(),
    };
    let attrs = SetOfVec::try_from(vec![
        attr(
            OID_ATTR_CONTENT_TYPE,
            Any::encode_from(&content_type).unwrap(),
        ),
        attr(
            OID_ATTR_MESSAGE_DIGEST,
            Any::new(Tag::OctetString, Sha256::digest(content).to_vec()).unwrap(),
        ),
        attr(
            OID_ATTR_SIGNING_TIME,
            Any::encode_from(&signing_time).unwrap(),
        ),
    ])
    .unwrap();
    let signature = key.sign(&attrs.to_der().unwrap(), rng);
    let si = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate().issuer().clone(),
            serial_number: cert.tbs_certificate().serial_number().clone(),
        }),
        digest_alg: sha256.clone(),
        signed_attrs: Some(attrs),
        signature_algorithm: key.algorithm(),
        signature: OctetString::new(signature).unwrap(),
        unsigned_attrs: None,
    };
    let sd = SignedData {
        version: CmsVersion::V3,
        digest_algorithms: SetOfVec::try_from(vec![sha256]).unwrap(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: content_type,
            econtent: Some(Any::new(Tag::OctetString, content.to_vec()).unwrap()),
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(vec![CertificateChoices::Certificate(cert.clone())]).unwrap(),
        )),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![si]).unwrap()),
    };
    ContentInfo {
        content_type: OID_SIGNED_DATA,
        content: Any::encode_from(&sd).unwrap(),
    }
    .to_der()
    .unwrap()
}

fn sod(dgs: &[(u8, Vec<u8>)], cert: &Certificate, key: &Key, rng: &mut StdRng) -> Vec<u8> {
    let hashes: Vec<(u8, Vec<u8>)> = dgs
        .iter()
        .map(|(n, b)| (*n, HashAlgorithm::Sha256.digest(b)))
        .collect();
    let lds = encode_lds_security_object(HashAlgorithm::Sha256, &hashes, Some(("0108", "040000")));
    tlv(
        0x77,
        &signed_data(
            OID_LDS_SECURITY_OBJECT,
            &lds,
            cert,
            key,
            time(2021, 6, 15),
            rng,
        ),
    )
}

fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap()
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    std::fs::write(dir.join(name), bytes).unwrap();
    println!("wrote {name}");
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = StdRng::seed_from_u64(0x0dac_u64);

    // One synthetic holder.
    let id = PersonalId::parse("001099012345").unwrap();
    let dob = NaiveDate::from_ymd_opt(1999, 1, 1).unwrap();
    let lines = build_td1(&MrzInput {
        id,
        family_name: "Nguyễn".into(),
        given_names: "Văn An".into(),
        date_of_birth: dob,
        sex: Sex::Male,
        expiry: NaiveDate::from_ymd_opt(2039, 1, 1).unwrap(),
    })
    .unwrap();
    let dg13 = Dg13 {
        id: Some(id),
        full_name: Some("Nguyễn Văn An".into()),
        date_of_birth: Some(dob),
        sex: Some(Sex::Male),
        nationality: Some("Việt Nam".into()),
        ethnicity: Some("Kinh".into()),
        religion: Some("Không".into()),
        place_of_origin: Some("Hoàn Kiếm, Hà Nội".into()),
        place_of_residence: Some("Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội".into()),
        identifying_marks: Some("Nốt ruồi C:1cm trên trước mép phải".into()),
        issue_date: NaiveDate::from_ymd_opt(2021, 6, 15),
        expiry: Some(Expiry::Date(NaiveDate::from_ymd_opt(2039, 1, 1).unwrap())),
        father_name: Some("Nguyễn Văn Bình".into()),
        mother_name: Some("Trần Thị Cúc".into()),
        spouse_name: None,
        old_id: Some("012345678".into()),
        other_fields: vec![],
    };
    let tampered = Dg13 {
        full_name: Some("Nguyễn Văn Ẩn".into()),
        ..dg13.clone()
    };
    // A tiny stand-in JPEG: SOI, APP0 "JFIF", EOI. Parsers only look at the container.
    let jpeg = [
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
        0xFF, 0xD9,
    ];
    let chip_key = p256::ecdsa::SigningKey::generate_from_rng(&mut rng);
    let chip_spki = ec_spki(
        "1.2.840.10045.3.1.7",
        &chip_key.verifying_key().to_sec1_bytes(),
    )
    .to_der()
    .unwrap();
    let ca_info = tlv(
        0x30,
        &[
            tlv(0x06, oid("0.4.0.127.0.7.2.2.1.2").as_bytes()),
            chip_spki.clone(),
        ]
        .concat(),
    );
    let dgs: Vec<(u8, Vec<u8>)> = vec![
        (1, lds::encode_dg1(&lines)),
        (2, lds::encode_dg2(&jpeg, ImageFormat::Jpeg, 480, 640)),
        (13, lds::encode_dg13(&dg13)),
        (14, tlv(0x6E, &tlv(0x31, &ca_info))),
        (15, tlv(0x6F, &chip_spki)),
    ];
    let com = EfCom {
        lds_version: "0108".into(),
        unicode_version: "040000".into(),
        data_groups: dgs.iter().map(|(n, _)| *n).collect(),
    };
    write(&dir, "com.bin", lds::encode_ef_com(&com));
    for (n, b) in &dgs {
        write(&dir, &format!("dg{n}.bin"), b);
    }
    write(&dir, "dg13_tampered.bin", lds::encode_dg13(&tampered));

    let mut trust_pem = String::new();
    let mut cscas = Vec::new();
    for (serial, kind, label) in [
        (1u32, "rsa", "RSA"),
        (2, "rsapss", "RSA-PSS"),
        (3, "p256", "P-256"),
        (4, "bp256", "brainpoolP256r1"),
    ] {
        let csca_key = Key::generate(kind, &mut rng);
        let csca = make_cert(
            &csca_key,
            &format!("CN=CSCA Test {label},O=dancu test,C=VN"),
            None,
            serial * 100,
            time(2020, 1, 1),
            time(2035, 1, 1),
            &mut rng,
        );
        let ds_key = Key::generate(kind, &mut rng);
        let ds = make_cert(
            &ds_key,
            &format!("CN=Document Signer {label},O=dancu test,C=VN"),
            Some((&csca, &csca_key)),
            serial * 100 + 1,
            time(2021, 1, 1),
            time(2031, 1, 1),
            &mut rng,
        );
        let csca_der = csca.to_der().unwrap();
        write(
            &dir,
            &format!("{kind}_csca.pem"),
            pem("CERTIFICATE", &csca_der),
        );
        trust_pem.push_str(&pem("CERTIFICATE", &csca_der));
        write(
            &dir,
            &format!("{kind}_sod.bin"),
            sod(&dgs, &ds, &ds_key, &mut rng),
        );

        let mut revoked = Vec::new();
        if kind == "p256" {
            // Expired: the signer's certificate ended before the SOD's signing time.
            let old_key = Key::generate(kind, &mut rng);
            let old = make_cert(
                &old_key,
                "CN=Document Signer P-256 expired,O=dancu test,C=VN",
                Some((&csca, &csca_key)),
                serial * 100 + 2,
                time(2019, 1, 1),
                time(2020, 12, 31),
                &mut rng,
            );
            write(
                &dir,
                "p256_sod_expired_signer.bin",
                sod(&dgs, &old, &old_key, &mut rng),
            );
            // Revoked: listed on the CSCA's CRL.
            let bad_key = Key::generate(kind, &mut rng);
            let bad = make_cert(
                &bad_key,
                "CN=Document Signer P-256 revoked,O=dancu test,C=VN",
                Some((&csca, &csca_key)),
                serial * 100 + 3,
                time(2021, 1, 1),
                time(2031, 1, 1),
                &mut rng,
            );
            write(
                &dir,
                "p256_sod_revoked_signer.bin",
                sod(&dgs, &bad, &bad_key, &mut rng),
            );
            revoked.push(RevokedCert {
                serial_number: bad.tbs_certificate().serial_number().clone(),
                revocation_date: time(2021, 2, 1),
                crl_entry_extensions: None,
            });
        }
        // Every CSCA publishes a CRL; only the P-256 one lists a certificate.
        let crl = CrlBuilder::new_with_this_update(
            &csca,
            CrlNumber::from(der::asn1::Uint::new(&[1]).unwrap()),
            time(2021, 3, 1),
        )
        .unwrap()
        .with_next_update(Some(time(2031, 3, 1)))
        .with_certificates(revoked.into_iter());
        let crl = sign_with(crl, &csca_key, &mut rng);
        write(&dir, &format!("{kind}_csca.crl"), crl.to_der().unwrap());
        cscas.push((csca, csca_key));
    }
    write(&dir, "trust.pem", &trust_pem);

    // Master list: the four CSCAs, signed by a master-list signer under the RSA CSCA.
    let (rsa_csca, rsa_key) = &cscas[0];
    let ml_key = Key::generate("p256", &mut rng);
    let ml_signer = make_cert(
        &ml_key,
        "CN=Master List Signer,O=dancu test,C=VN",
        Some((rsa_csca, rsa_key)),
        150,
        time(2021, 1, 1),
        time(2031, 1, 1),
        &mut rng,
    );
    let certs: Vec<u8> = cscas
        .iter()
        .flat_map(|(c, _)| c.to_der().unwrap())
        .collect();
    let ml = tlv(0x30, &[tlv(0x02, &[0]), tlv(0x31, &certs)].concat());
    write(
        &dir,
        "masterlist.bin",
        signed_data(
            OID_CSCA_MASTER_LIST,
            &ml,
            &ml_signer,
            &ml_key,
            time(2021, 6, 1),
            &mut rng,
        ),
    );
}
