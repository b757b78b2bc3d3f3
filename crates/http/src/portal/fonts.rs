//! The portals' vendored font, Be Vietnam Pro (SIL OFL 1.1, see `assets/fonts/`): regular and
//! semibold, latin and Vietnamese subsets in WOFF2, embedded in the binary. The file names carry
//! the font's version, so they are served as immutable for a year.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The font's version, part of every URL.
pub(crate) const VERSION: &str = "5.3.0";

const FILES: &[(&str, &[u8])] = &[
    (
        "be-vietnam-pro-latin-400.woff2",
        include_bytes!("assets/fonts/be-vietnam-pro-latin-400-normal.woff2"),
    ),
    (
        "be-vietnam-pro-latin-600.woff2",
        include_bytes!("assets/fonts/be-vietnam-pro-latin-600-normal.woff2"),
    ),
    (
        "be-vietnam-pro-vietnamese-400.woff2",
        include_bytes!("assets/fonts/be-vietnam-pro-vietnamese-400-normal.woff2"),
    ),
    (
        "be-vietnam-pro-vietnamese-600.woff2",
        include_bytes!("assets/fonts/be-vietnam-pro-vietnamese-600-normal.woff2"),
    ),
];

/// `GET /portal/assets/fonts/{version}/{file}`.
pub(super) async fn font(Path((version, file)): Path<(String, String)>) -> Response {
    let found = FILES.iter().find(|(name, _)| *name == file);
    match found {
        Some((_, bytes)) if version == VERSION => {
            let mut r = bytes.into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("font/woff2"));
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            r
        }
        _ => (StatusCode::NOT_FOUND, "no such font file").into_response(),
    }
}
