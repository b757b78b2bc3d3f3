//! Bulk import and export of person records.
//!
//! Import reads NDJSON (one person record per line, the form `export` writes) or CSV (the columns
//! of [`CSV_COLUMNS`]), validates every row with the domain rules, and loads valid rows in
//! batches. Each batch is one transaction that also records how far the file has been loaded,
//! so an import killed at any moment leaves whole batches only, and running it again resumes
//! after the last committed line. Rejected rows are reported with their line number and reason
//! and written to `<FILE>.rejects.ndjson`.

use chrono::NaiveDate;
use dancu_domain::admin::{Address, Scheme};
use dancu_domain::event::{EventMeta, PersonChange, apply};
use dancu_domain::person::{LegacyCmnd, Person, Residence, Sex};
use dancu_domain::{CmndNumber, PartialDate, PersonName, PersonalId, Problem};
use dancu_store::{ImportRow, Importer, Store};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::mpsc::sync_channel;

/// Rows per transaction.
pub const BATCH: usize = 20_000;

/// Columns of the CSV form, in order.
pub const CSV_COLUMNS: [&str; 17] = [
    "id",
    "family_name",
    "middle_name",
    "given_name",
    "date_of_birth",
    "sex",
    "ethnicity",
    "religion",
    "nationality",
    "birth_registration_scheme",
    "birth_registration_commune",
    "birth_registration_date",
    "residence_scheme",
    "residence_commune",
    "residence_detail",
    "residence_from",
    "cmnd",
];

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON person record per line.
    Ndjson,
    /// Comma-separated, with a header row of [`CSV_COLUMNS`].
    Csv,
}

impl Format {
    /// Guesses from a file name (`.csv` → CSV, else NDJSON).
    pub fn from_path(p: &Path) -> Self {
        if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
            Self::Csv
        } else {
            Self::Ndjson
        }
    }
}

/// A rejected row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reject {
    /// Line (NDJSON) or record number (CSV, header = 1).
    pub line: u64,
    /// Stable code.
    pub code: String,
    /// Why, in English.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ImportReport {
    /// Rows loaded now.
    pub imported: u64,
    /// Rows refused.
    pub rejected: u64,
    /// Rows skipped because an earlier run already loaded them.
    pub resumed_after_line: u64,
    /// Seconds spent.
    pub seconds: f64,
}

fn reject(line: u64, p: &dyn Problem) -> Reject {
    Reject {
        line,
        code: p.code().to_owned(),
        reason: p.message_en(),
    }
}

fn reject_msg(line: u64, code: &str, reason: impl Into<String>) -> Reject {
    Reject {
        line,
        code: code.to_owned(),
        reason: reason.into(),
    }
}

/// Validates a record as the register would accept it on import.
pub fn validate(line: u64, mut p: Person, today: NaiveDate) -> Result<Person, Reject> {
    p.version = 0;
    p.date_of_birth
        .check_range(today)
        .map_err(|e| reject(line, &e))?;
    for a in [
        Some(&p.birth_registration),
        p.home_town.as_ref(),
        p.permanent_residence.as_ref().map(|r| &r.address),
    ]
    .into_iter()
    .flatten()
    {
        a.validate().map_err(|e| reject(line, &e))?;
    }
    let state = apply(
        None,
        &PersonChange::RecordImported {
            record: Box::new(p),
        },
    )
    .map_err(|e| reject(line, &e))?;
    Ok(state)
}

fn parse_ndjson(line: u64, text: &str, today: NaiveDate) -> Result<Person, Reject> {
    let p: Person = serde_json::from_str(text)
        .map_err(|e| reject_msg(line, "invalid_record", e.to_string()))?;
    validate(line, p, today)
}

fn field(rec: &csv::StringRecord, i: usize) -> &str {
    rec.get(i).unwrap_or("").trim()
}

fn csv_date(line: u64, s: &str, what: &str) -> Result<NaiveDate, Reject> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        reject_msg(
            line,
            "date_shape",
            format!("{what} must be YYYY-MM-DD, got {s:?}"),
        )
    })
}

fn csv_scheme(line: u64, s: &str) -> Result<Scheme, Reject> {
    match s {
        "legacy" => Ok(Scheme::Legacy),
        "2025" => Ok(Scheme::Y2025),
        other => Err(reject_msg(
            line,
            "scheme_unknown",
            format!("scheme must be legacy or 2025, got {other:?}"),
        )),
    }
}

fn parse_csv(line: u64, rec: &csv::StringRecord, today: NaiveDate) -> Result<Person, Reject> {
    if rec.len() != CSV_COLUMNS.len() {
        return Err(reject_msg(
            line,
            "csv_field_count",
            format!("expected {} fields, got {}", CSV_COLUMNS.len(), rec.len()),
        ));
    }
    let id = PersonalId::parse(field(rec, 0)).map_err(|e| reject(line, &e))?;
    let name = PersonName::from_parts(field(rec, 1), field(rec, 2), field(rec, 3))
        .map_err(|e| reject(line, &e))?;
    let date_of_birth = PartialDate::parse(field(rec, 4)).map_err(|e| reject(line, &e))?;
    let sex = match field(rec, 5) {
        "male" | "Nam" | "M" => Sex::Male,
        "female" | "Nữ" | "F" => Sex::Female,
        other => {
            return Err(reject_msg(
                line,
                "sex_unknown",
                format!("sex must be male or female, got {other:?}"),
            ));
        }
    };
    let text = |i: usize, default: &str| -> String {
        let v = field(rec, i);
        if v.is_empty() {
            default.to_owned()
        } else {
            v.to_owned()
        }
    };
    let birth_registration = Address::new(
        csv_scheme(line, field(rec, 9))?,
        field(rec, 10),
        "",
        csv_date(line, field(rec, 11), "birth_registration_date")?,
    )
    .map_err(|e| reject(line, &e))?;
    let permanent_residence = if field(rec, 13).is_empty() {
        None
    } else {
        let from = csv_date(line, field(rec, 15), "residence_from")?;
        let address = Address::new(
            csv_scheme(line, field(rec, 12))?,
            field(rec, 13),
            field(rec, 14),
            from,
        )
        .map_err(|e| reject(line, &e))?;
        Some(Residence {
            address,
            from,
            until: None,
        })
    };
    let legacy_cmnd = if field(rec, 16).is_empty() {
        vec![]
    } else {
        vec![LegacyCmnd {
            number: CmndNumber::parse(field(rec, 16)).map_err(|e| reject(line, &e))?,
            issued_on: None,
        }]
    };
    let p = Person {
        id,
        version: 0,
        name,
        other_names: vec![],
        date_of_birth,
        sex,
        birth_registration,
        home_town: None,
        ethnicity: text(6, "Kinh"),
        religion: text(7, "Không"),
        nationality: text(8, "VN"),
        marital_status: Default::default(),
        blood_type: None,
        father: None,
        mother: None,
        spouse: None,
        permanent_residence,
        temporary_residence: None,
        temporary_absence: None,
        last_stay: None,
        household: None,
        legacy_cmnd,
        cards: vec![],
        vital_status: Default::default(),
    };
    validate(line, p, today)
}

/// The CSV row of a record (lossy: only the [`CSV_COLUMNS`]).
pub fn csv_row(p: &Person) -> Vec<String> {
    let res = p.permanent_residence.as_ref();
    vec![
        p.id.to_string(),
        p.name.family.clone(),
        p.name.middle.clone(),
        p.name.given.clone(),
        p.date_of_birth.to_string(),
        match p.sex {
            Sex::Male => "male".into(),
            Sex::Female => "female".into(),
        },
        p.ethnicity.clone(),
        p.religion.clone(),
        p.nationality.clone(),
        p.birth_registration.scheme.as_str().into(),
        p.birth_registration.commune_code.clone(),
        p.birth_registration.effective_from.to_string(),
        res.map(|r| r.address.scheme.as_str().to_owned())
            .unwrap_or_default(),
        res.map(|r| r.address.commune_code.clone())
            .unwrap_or_default(),
        res.map(|r| r.address.detail.clone()).unwrap_or_default(),
        res.map(|r| r.from.to_string()).unwrap_or_default(),
        p.legacy_cmnd
            .first()
            .map(|c| c.number.as_str().to_owned())
            .unwrap_or_default(),
    ]
}

/// Identifies a file by the SHA-256 of its content, so a resumed import is the same file.
fn file_id(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("import:{}", hex::encode(h.finalize())))
}

struct Batch {
    rows: Vec<ImportRow>,
    rejects: Vec<Reject>,
    bytes: u64,
}

/// Imports a file into the store. `progress` is told how many bytes were consumed.
pub fn import_file(
    store: &dyn Store,
    path: &Path,
    format: Format,
    actor: &str,
    now: chrono::DateTime<chrono::Utc>,
    progress: &indicatif::ProgressBar,
) -> Result<(ImportReport, Vec<Reject>), String> {
    let start = std::time::Instant::now();
    let import_id = file_id(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let done = store
        .import_progress(&import_id)
        .map_err(|e| e.to_string())?
        .unwrap_or(0);
    let file = std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    progress.set_length(size);
    let today = (now + chrono::Duration::hours(7)).date_naive();
    let (tx, rx) = sync_channel::<Result<Batch, String>>(2);
    let parser = std::thread::spawn(move || {
        let send = |b: Result<Batch, String>| tx.send(b).is_ok();
        let mut batch = Batch {
            rows: Vec::with_capacity(BATCH),
            rejects: vec![],
            bytes: 0,
        };
        let mut seen: HashSet<PersonalId> = HashSet::new();
        let mut push = |batch: &mut Batch, line: u64, r: Result<Person, Reject>| match r {
            Ok(p) if !seen.insert(p.id) => batch.rejects.push(reject_msg(
                line,
                "duplicate_in_file",
                format!("ID {} appears earlier in the file", p.id),
            )),
            Ok(p) => batch.rows.push(ImportRow { line, person: p }),
            Err(r) => batch.rejects.push(r),
        };
        let flush = |batch: &mut Batch| {
            std::mem::replace(
                batch,
                Batch {
                    rows: Vec::with_capacity(BATCH),
                    rejects: vec![],
                    bytes: 0,
                },
            )
        };
        match format {
            Format::Ndjson => {
                let mut reader = BufReader::with_capacity(1 << 20, file);
                let mut buf = String::new();
                let mut line = 0u64;
                loop {
                    buf.clear();
                    let n = match reader.read_line(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) => {
                            send(Err(format!("line {}: {e}", line + 1)));
                            return;
                        }
                    };
                    line += 1;
                    batch.bytes += n as u64;
                    if line <= done {
                        continue;
                    }
                    let text = buf.trim();
                    if text.is_empty() {
                        continue;
                    }
                    push(&mut batch, line, parse_ndjson(line, text, today));
                    if batch.rows.len() >= BATCH && !send(Ok(flush(&mut batch))) {
                        return;
                    }
                }
            }
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(true)
                    .from_reader(file);
                match reader.headers() {
                    Ok(h) if h.iter().map(str::trim).eq(CSV_COLUMNS.iter().copied()) => {}
                    Ok(h) => {
                        send(Err(format!(
                            "the CSV header must be {}; got {}",
                            CSV_COLUMNS.join(","),
                            h.iter().collect::<Vec<_>>().join(",")
                        )));
                        return;
                    }
                    Err(e) => {
                        send(Err(format!("reading the CSV header: {e}")));
                        return;
                    }
                }
                let mut rec = csv::StringRecord::new();
                let mut line = 1u64;
                let mut pos = reader.position().byte();
                loop {
                    match reader.read_record(&mut rec) {
                        Ok(false) => break,
                        Ok(true) => {}
                        Err(e) => {
                            line += 1;
                            batch
                                .rejects
                                .push(reject_msg(line, "csv_malformed", e.to_string()));
                            continue;
                        }
                    }
                    line += 1;
                    let now_pos = reader.position().byte();
                    batch.bytes += now_pos - pos;
                    pos = now_pos;
                    if line <= done {
                        continue;
                    }
                    push(&mut batch, line, parse_csv(line, &rec, today));
                    if batch.rows.len() >= BATCH && !send(Ok(flush(&mut batch))) {
                        return;
                    }
                }
            }
        }
        send(Ok(flush(&mut batch)));
    });
    let meta = EventMeta {
        actor: actor.to_owned(),
        at: now,
        reason: Some(format!(
            "bulk import of {}",
            path.file_name()
                .map(|f| f.to_string_lossy())
                .unwrap_or_default()
        )),
        legal_basis: None,
        document_ref: Some(import_id.clone()),
    };
    let mut report = ImportReport {
        resumed_after_line: done,
        ..Default::default()
    };
    let mut rejects = Vec::new();
    let mut importer = Importer::new(store, &import_id, &meta).map_err(|e| e.to_string())?;
    for batch in rx {
        let mut batch = batch?;
        // The progress mark is the last loaded row's line: rejected lines after it are read
        // again on a resumed run, which only rejects them again.
        if !batch.rows.is_empty() {
            let dupes = importer.people(&batch.rows).map_err(|e| e.to_string())?;
            let dup_set: HashSet<u64> = dupes.iter().copied().collect();
            for r in batch.rows.iter().filter(|r| dup_set.contains(&r.line)) {
                rejects.push(reject_msg(
                    r.line,
                    "person_exists",
                    format!("ID {} is already in the register", r.person.id),
                ));
            }
            report.imported += (batch.rows.len() - dupes.len()) as u64;
        }
        report.rejected += batch.rejects.len() as u64;
        rejects.append(&mut batch.rejects);
        progress.inc(batch.bytes);
    }
    let _ = parser.join();
    if importer.is_bulk() {
        progress.set_message("building indexes");
    }
    importer.finish().map_err(|e| e.to_string())?;
    report.rejected = rejects.len() as u64;
    report.seconds = start.elapsed().as_secs_f64();
    rejects.sort_by_key(|r| r.line);
    Ok((report, rejects))
}

/// Writes rejects as NDJSON next to the input.
pub fn write_rejects(path: &Path, rejects: &[Reject]) -> std::io::Result<std::path::PathBuf> {
    let mut out_path = path.as_os_str().to_owned();
    out_path.push(".rejects.ndjson");
    let out_path = std::path::PathBuf::from(out_path);
    let mut w = std::io::BufWriter::new(std::fs::File::create(&out_path)?);
    for r in rejects {
        serde_json::to_writer(&mut w, r)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(out_path)
}

/// Exports every person, in ID order.
pub fn export(store: &dyn Store, format: Format, out: &mut dyn Write) -> Result<u64, String> {
    let mut n = 0u64;
    match format {
        Format::Ndjson => {
            store
                .for_each_person(&mut |p| {
                    serde_json::to_writer(&mut *out, &p)
                        .and_then(|_| out.write_all(b"\n").map_err(serde_json::Error::io))
                        .map_err(|e| dancu_store::StoreError::Backend(e.to_string()))?;
                    n += 1;
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(CSV_COLUMNS).map_err(|e| e.to_string())?;
            store
                .for_each_person(&mut |p| {
                    w.write_record(csv_row(&p))
                        .map_err(|e| dancu_store::StoreError::Backend(e.to_string()))?;
                    n += 1;
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
            w.flush().map_err(|e| e.to_string())?;
        }
    }
    Ok(n)
}
