//! A small, bounded CBOR (RFC 8949) reader: enough for COSE keys and `fmt: "none"` attestation
//! objects. Definite lengths only, no tags, no floats; nesting and item counts are capped, and
//! every length is checked against the bytes left before anything is allocated.

/// A decoded item borrowing from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// Major type 0.
    Uint(u64),
    /// Major type 1: the value −1 − n.
    Neg(i128),
    /// Major type 2.
    Bytes(&'a [u8]),
    /// Major type 3.
    Text(&'a str),
    /// Major type 4.
    Array(Vec<Value<'a>>),
    /// Major type 5, in input order.
    Map(Vec<(Value<'a>, Value<'a>)>),
    /// `false` / `true`.
    Bool(bool),
    /// `null`.
    Null,
}

impl<'a> Value<'a> {
    /// The value under an integer key of a map.
    pub(crate) fn get_int(&self, key: i128) -> Option<&Value<'a>> {
        let Value::Map(entries) = self else {
            return None;
        };
        entries
            .iter()
            .find(|(k, _)| k.as_int() == Some(key))
            .map(|(_, v)| v)
    }

    /// The value under a text key of a map.
    pub(crate) fn get_text(&self, key: &str) -> Option<&Value<'a>> {
        let Value::Map(entries) = self else {
            return None;
        };
        entries
            .iter()
            .find(|(k, _)| matches!(k, Value::Text(t) if *t == key))
            .map(|(_, v)| v)
    }

    /// An integer, of either sign.
    pub(crate) fn as_int(&self) -> Option<i128> {
        match *self {
            Value::Uint(n) => Some(i128::from(n)),
            Value::Neg(n) => Some(n),
            _ => None,
        }
    }
}

/// Why bytes are not acceptable CBOR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CborError {
    /// Input ended inside an item.
    Truncated,
    /// Indefinite length, tag, float, reserved value or non-UTF-8 text.
    Unsupported,
    /// Nesting or item count past the caps.
    TooComplex,
    /// A map with the same key twice.
    DuplicateKey,
}

const MAX_DEPTH: usize = 8;
const MAX_ITEMS: usize = 512;

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    items: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, CborError> {
        let b = *self.input.get(self.pos).ok_or(CborError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], CborError> {
        let n = usize::try_from(n).map_err(|_| CborError::Truncated)?;
        let end = self.pos.checked_add(n).ok_or(CborError::Truncated)?;
        let s = self.input.get(self.pos..end).ok_or(CborError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn argument(&mut self, info: u8) -> Result<u64, CborError> {
        Ok(match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes(self.fixed::<2>()?)),
            26 => u64::from(u32::from_be_bytes(self.fixed::<4>()?)),
            27 => u64::from_be_bytes(self.fixed::<8>()?),
            _ => return Err(CborError::Unsupported),
        })
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], CborError> {
        let s = self.take(N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    /// A count of nested items, refused when the input cannot hold that many (each item takes
    /// at least one byte) or the total passes the cap.
    fn count(&mut self, n: u64, per_item: u64) -> Result<usize, CborError> {
        let left = (self.input.len() - self.pos) as u64;
        if n.saturating_mul(per_item) > left {
            return Err(CborError::Truncated);
        }
        let n = usize::try_from(n).map_err(|_| CborError::TooComplex)?;
        self.items = self.items.saturating_add(n);
        if self.items > MAX_ITEMS {
            return Err(CborError::TooComplex);
        }
        Ok(n)
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::TooComplex);
        }
        let initial = self.byte()?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        if major == 7 {
            return match info {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 => Ok(Value::Null),
                _ => Err(CborError::Unsupported),
            };
        }
        let arg = self.argument(info)?;
        Ok(match major {
            0 => Value::Uint(arg),
            1 => Value::Neg(-1 - i128::from(arg)),
            2 => Value::Bytes(self.take(arg)?),
            3 => Value::Text(
                std::str::from_utf8(self.take(arg)?).map_err(|_| CborError::Unsupported)?,
            ),
            4 => {
                let n = self.count(arg, 1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            5 => {
                let n = self.count(arg, 2)?;
                let mut entries: Vec<(Value<'a>, Value<'a>)> = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = self.value(depth + 1)?;
                    let v = self.value(depth + 1)?;
                    if entries.iter().any(|(e, _)| *e == k) {
                        return Err(CborError::DuplicateKey);
                    }
                    entries.push((k, v));
                }
                Value::Map(entries)
            }
            _ => return Err(CborError::Unsupported),
        })
    }
}

/// Decodes one item from the front of `input`, returning it and the bytes it took.
pub(crate) fn decode_prefix(input: &[u8]) -> Result<(Value<'_>, usize), CborError> {
    let mut r = Reader {
        input,
        pos: 0,
        items: 0,
    };
    let v = r.value(0)?;
    Ok((v, r.pos))
}

/// Decodes exactly one item filling `input`.
pub(crate) fn decode(input: &[u8]) -> Result<Value<'_>, CborError> {
    match decode_prefix(input)? {
        (v, used) if used == input.len() => Ok(v),
        _ => Err(CborError::Unsupported),
    }
}

/// A minimal encoder for tests and the software authenticator.
#[cfg(any(test, feature = "soft-authenticator"))]
pub(crate) mod enc {
    fn head(out: &mut Vec<u8>, major: u8, n: u64) {
        let m = major << 5;
        match n {
            0..=23 => out.push(m | n as u8),
            24..=0xff => out.extend([m | 24, n as u8]),
            0x100..=0xffff => {
                out.push(m | 25);
                out.extend((n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(m | 26);
                out.extend((n as u32).to_be_bytes());
            }
            _ => {
                out.push(m | 27);
                out.extend(n.to_be_bytes());
            }
        }
    }
    pub(crate) fn int(out: &mut Vec<u8>, v: i64) {
        if v >= 0 {
            head(out, 0, v as u64);
        } else {
            head(out, 1, (-1 - v) as u64);
        }
    }
    pub(crate) fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        head(out, 2, b.len() as u64);
        out.extend_from_slice(b);
    }
    pub(crate) fn text(out: &mut Vec<u8>, t: &str) {
        head(out, 3, t.len() as u64);
        out.extend_from_slice(t.as_bytes());
    }
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn array(out: &mut Vec<u8>, n: usize) {
        head(out, 4, n as u64);
    }
    pub(crate) fn map(out: &mut Vec<u8>, n: usize) {
        head(out, 5, n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_a_cose_like_map() {
        let mut b = Vec::new();
        enc::map(&mut b, 3);
        enc::int(&mut b, 1);
        enc::int(&mut b, 2);
        enc::int(&mut b, -7);
        enc::bytes(&mut b, &[1, 2, 3]);
        enc::text(&mut b, "fmt");
        enc::array(&mut b, 2);
        b.extend([0xf5, 0xf6]);
        let v = decode(&b).unwrap();
        assert_eq!(v.get_int(1), Some(&Value::Uint(2)));
        assert_eq!(v.get_int(-7), Some(&Value::Bytes(&[1, 2, 3])));
        assert_eq!(
            v.get_text("fmt"),
            Some(&Value::Array(vec![Value::Bool(true), Value::Null]))
        );
    }

    #[test]
    fn refuses_what_it_does_not_support() {
        assert_eq!(decode(&[]), Err(CborError::Truncated));
        assert_eq!(decode(&[0x9f, 0xff]), Err(CborError::Unsupported)); // indefinite array
        assert_eq!(decode(&[0xc1, 0x00]), Err(CborError::Unsupported)); // tag
        assert_eq!(decode(&[0xf9, 0, 0]), Err(CborError::Unsupported)); // half float
        assert_eq!(decode(&[0x62, 0xff, 0xfe]), Err(CborError::Unsupported)); // bad UTF-8
        assert_eq!(decode(&[0x01, 0x02]), Err(CborError::Unsupported)); // trailing bytes
        assert_eq!(decode(&[0xa2, 1, 1, 1, 2]), Err(CborError::DuplicateKey));
        // A huge claimed length is refused before any allocation.
        assert_eq!(
            decode(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(CborError::Truncated)
        );
        assert_eq!(
            decode(&[0x5a, 0xff, 0xff, 0xff, 0xff]),
            Err(CborError::Truncated)
        );
        // Deep nesting.
        let deep = [0x81u8; 20];
        assert!(decode(&deep).is_err());
    }

    #[test]
    fn negative_extremes() {
        let mut b = vec![0x3b];
        b.extend(u64::MAX.to_be_bytes());
        assert_eq!(decode(&b), Ok(Value::Neg(-1 - i128::from(u64::MAX))));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn integers_round_trip(n in any::<i64>()) {
            let mut b = Vec::new();
            enc::int(&mut b, n);
            prop_assert_eq!(decode(&b).unwrap().as_int(), Some(i128::from(n)));
        }

        #[test]
        fn byte_strings_round_trip(v in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut b = Vec::new();
            enc::bytes(&mut b, &v);
            prop_assert_eq!(decode(&b).unwrap(), Value::Bytes(&v));
        }
    }
}
