//! A small bounded BER-TLV reader and writer for the chip's elementary files.
//!
//! The reader borrows from its input and never allocates; it accepts definite lengths only
//! (ICAO 9303 LDS files use them), tags of up to 3 bytes and lengths of up to 4 bytes, and it
//! never reads past the end of its input, so a hostile file can cost at most one pass over its
//! bytes. Nesting depth is bounded by the callers, which descend a fixed number of levels.

/// Why a TLV structure was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlvError {
    /// Input ended inside a tag, a length or a value.
    #[error("TLV data truncated at offset {0}")]
    Truncated(usize),
    /// Tag longer than 3 bytes.
    #[error("TLV tag too long at offset {0}")]
    TagTooLong(usize),
    /// Indefinite length (`0x80`) or a length field longer than 4 bytes.
    #[error("unsupported TLV length encoding at offset {0}")]
    BadLength(usize),
    /// A different tag was expected.
    #[error("expected tag {expected:#x}, found {found:#x}")]
    UnexpectedTag {
        /// Tag the caller required.
        expected: u32,
        /// Tag found.
        found: u32,
    },
    /// Bytes follow the outermost element.
    #[error("trailing bytes after the outermost element")]
    TrailingData,
}

impl TlvError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TlvError::Truncated(_) => "tlv.truncated",
            TlvError::TagTooLong(_) => "tlv.tag_too_long",
            TlvError::BadLength(_) => "tlv.bad_length",
            TlvError::UnexpectedTag { .. } => "tlv.unexpected_tag",
            TlvError::TrailingData => "tlv.trailing_data",
        }
    }
}

/// One TLV element, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag bytes read as a big-endian number (e.g. `0x5F1F`, `0x7F61`, `0x30`).
    pub tag: u32,
    /// The value bytes.
    pub value: &'a [u8],
    /// The whole element: tag, length and value.
    pub raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// Whether the tag has the constructed bit.
    pub fn is_constructed(&self) -> bool {
        self.raw.first().is_some_and(|b| b & 0x20 != 0)
    }

    /// A reader over this element's value (its children).
    pub fn children(&self) -> TlvReader<'a> {
        TlvReader::new(self.value)
    }

    /// Fail unless the tag is `tag`.
    pub fn expect(self, tag: u32) -> Result<Self, TlvError> {
        if self.tag == tag {
            Ok(self)
        } else {
            Err(TlvError::UnexpectedTag {
                expected: tag,
                found: self.tag,
            })
        }
    }
}

/// Sequential reader over concatenated TLV elements.
#[derive(Debug, Clone)]
pub struct TlvReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> TlvReader<'a> {
    /// Reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        TlvReader { data, pos: 0 }
    }

    /// Whether all input was consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn byte(&mut self) -> Result<u8, TlvError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or(TlvError::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    /// Read the next element, or `None` at the end of input.
    pub fn next_tlv(&mut self) -> Result<Option<Tlv<'a>>, TlvError> {
        if self.is_empty() {
            return Ok(None);
        }
        let start = self.pos;
        let first = self.byte()?;
        let mut tag = u32::from(first);
        if first & 0x1F == 0x1F {
            let mut n = 0;
            loop {
                let b = self.byte()?;
                tag = (tag << 8) | u32::from(b);
                n += 1;
                if b & 0x80 == 0 {
                    break;
                }
                if n >= 2 {
                    return Err(TlvError::TagTooLong(start));
                }
            }
        }
        let len_at = self.pos;
        let l0 = self.byte()?;
        let len = if l0 < 0x80 {
            usize::from(l0)
        } else {
            let n = usize::from(l0 & 0x7F);
            if n == 0 || n > 4 {
                return Err(TlvError::BadLength(len_at));
            }
            let mut len = 0usize;
            for _ in 0..n {
                len = (len << 8) | usize::from(self.byte()?);
            }
            len
        };
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.data.len())
            .ok_or(TlvError::Truncated(self.pos))?;
        let value = &self.data[self.pos..end];
        self.pos = end;
        Ok(Some(Tlv {
            tag,
            value,
            raw: &self.data[start..end],
        }))
    }

    /// Read the next element, failing at the end of input.
    pub fn read(&mut self) -> Result<Tlv<'a>, TlvError> {
        self.next_tlv()?.ok_or(TlvError::Truncated(self.pos))
    }

    /// Read the next element and require its tag.
    pub fn read_tag(&mut self, tag: u32) -> Result<Tlv<'a>, TlvError> {
        self.read()?.expect(tag)
    }

    /// Find the first element with `tag` among the remaining ones (consuming up to it).
    pub fn find(&mut self, tag: u32) -> Result<Option<Tlv<'a>>, TlvError> {
        while let Some(t) = self.next_tlv()? {
            if t.tag == tag {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }
}

/// Read exactly one element spanning all of `data`, with the given tag.
pub fn read_single(data: &[u8], tag: u32) -> Result<Tlv<'_>, TlvError> {
    let mut r = TlvReader::new(data);
    let t = r.read_tag(tag)?;
    if !r.is_empty() {
        return Err(TlvError::TrailingData);
    }
    Ok(t)
}

/// Append one element (definite length, minimal encoding) to `out`.
pub fn write_tlv(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
    let tag_bytes = tag.to_be_bytes();
    let skip = tag_bytes.iter().take_while(|&&b| b == 0).count().min(3);
    out.extend_from_slice(&tag_bytes[skip..]);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let lb = len.to_be_bytes();
        let skip = lb.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (lb.len() - skip) as u8);
        out.extend_from_slice(&lb[skip..]);
    }
    out.extend_from_slice(value);
}

/// One element as a new vector.
pub fn tlv(tag: u32, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(value.len() + 6);
    write_tlv(&mut v, tag, value);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_multi_byte_tags_and_long_lengths() {
        let inner = tlv(0x5F1F, &[b'A'; 200]);
        let outer = tlv(0x61, &inner);
        assert_eq!(&outer[..4], &[0x61, 0x81, 0xCC, 0x5F]);
        let t = read_single(&outer, 0x61).unwrap();
        let c = t.children().read_tag(0x5F1F).unwrap();
        assert_eq!(c.value.len(), 200);
        assert!(t.is_constructed());
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            read_single(&[0x61, 0x05, 1], 0x61).unwrap_err().code(),
            "tlv.truncated"
        );
        assert_eq!(
            read_single(&[0x61, 0x80, 0, 0], 0x61).unwrap_err().code(),
            "tlv.bad_length"
        );
        assert_eq!(
            read_single(&[0x61, 0x85, 1, 1, 1, 1, 1], 0x61)
                .unwrap_err()
                .code(),
            "tlv.bad_length"
        );
        assert_eq!(
            read_single(&[0x5F, 0x81, 0x82, 0x83, 0], 0)
                .unwrap_err()
                .code(),
            "tlv.tag_too_long"
        );
        assert_eq!(
            read_single(&[0x61, 0, 0], 0x61).unwrap_err().code(),
            "tlv.trailing_data"
        );
        assert_eq!(
            read_single(&[0x62, 0], 0x61).unwrap_err().code(),
            "tlv.unexpected_tag"
        );
        // A 4-byte length claiming 4 GiB must not allocate or overflow.
        assert!(read_single(&[0x61, 0x84, 0xFF, 0xFF, 0xFF, 0xFF], 0x61).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(tag in prop_oneof![1u32..0x1F, 0x5F01u32..0x5F7F, 0x7F01u32..0x7F7F], v in proptest::collection::vec(any::<u8>(), 0..1000)) {
            let e = tlv(tag, &v);
            let t = read_single(&e, tag).unwrap();
            prop_assert_eq!(t.value, &v[..]);
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut r = TlvReader::new(&data);
            while let Ok(Some(t)) = r.next_tlv() {
                let mut c = t.children();
                while let Ok(Some(_)) = c.next_tlv() {}
            }
        }
    }
}
