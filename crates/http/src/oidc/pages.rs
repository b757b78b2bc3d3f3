//! Server-rendered pages of the provider: login, one-time code, consent, error and logout.
//! Vietnamese first with English below, one vendored stylesheet inline, no external assets,
//! readable on a phone screen.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dancu_idp::IdpError;

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The stylesheet, vendored here so no page loads anything from elsewhere.
const CSS: &str = "*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;background:#f4f5f7;color:#1b1f24}\
main{max-width:26rem;margin:0 auto;padding:1.25rem}h1{font-size:1.35rem;margin:.5rem 0 1rem;color:#a50e0e}\
.card{background:#fff;border-radius:.75rem;padding:1.25rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}\
label{display:block;font-weight:600;margin:.75rem 0 .25rem}.en{display:block;font-weight:400;font-size:.85rem;color:#5b6470}\
input{width:100%;font-size:1.1rem;padding:.65rem;border:1px solid #b8c0ca;border-radius:.5rem}\
button{width:100%;margin-top:1rem;font-size:1.05rem;padding:.75rem;border:0;border-radius:.5rem;background:#a50e0e;color:#fff}\
button.secondary{background:#e4e7eb;color:#1b1f24}.err{background:#fdecea;color:#7a1010;padding:.6rem;border-radius:.5rem}\
ul{padding-left:1.2rem}footer{margin-top:1.5rem;font-size:.8rem;color:#5b6470;text-align:center}";

fn page(status: StatusCode, title_vi: &str, title_en: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\">\
<title>{tv} · dancu</title><style>{CSS}</style></head><body><main>\
<h1>{tv}<span class=\"en\">{te}</span></h1><div class=\"card\">{body}</div>\
<footer>Hệ thống định danh và xác thực điện tử · Electronic identification</footer>\
</main></body></html>",
        tv = esc(title_vi),
        te = esc(title_en),
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // No form-action: browsers apply it to the redirect that follows a form post too, and the
    // login and consent forms end in a redirect to the client's URI.
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

fn error_box(e: Option<&IdpError>) -> String {
    e.map(|e| {
        format!(
            "<p class=\"err\" role=\"alert\" data-code=\"{}\">{}<span class=\"en\">{}</span></p>",
            esc(e.code),
            esc(&e.vi),
            esc(&e.en)
        )
    })
    .unwrap_or_default()
}

/// Login: ID number and six-digit passcode.
pub fn login(tx: &str, client_name: &str, error: Option<&IdpError>) -> Response {
    let body = format!(
        "<p>Đăng nhập để tiếp tục tới <strong>{c}</strong>.<span class=\"en\">Log in to continue to {c}.</span></p>{err}\
<form method=\"post\" action=\"/authorize/login\"><input type=\"hidden\" name=\"tx\" value=\"{tx}\">\
<label for=\"id\">Số định danh cá nhân<span class=\"en\">Personal ID number</span></label>\
<input id=\"id\" name=\"id_number\" inputmode=\"numeric\" autocomplete=\"username\" maxlength=\"12\" required>\
<label for=\"pc\">Mật khẩu (6 chữ số)<span class=\"en\">Passcode (6 digits)</span></label>\
<input id=\"pc\" name=\"passcode\" type=\"password\" inputmode=\"numeric\" autocomplete=\"current-password\" maxlength=\"6\" required>\
<details><summary>Cha, mẹ, người giám hộ đăng nhập thay cho trẻ em<span class=\"en\">A parent or guardian acting for a child</span></summary>\
<label for=\"minor\">Số định danh của trẻ<span class=\"en\">The child's ID number</span></label>\
<input id=\"minor\" name=\"acting_for\" inputmode=\"numeric\" maxlength=\"12\"></details>\
<button type=\"submit\">Đăng nhập · Log in</button></form>\
<div id=\"passkey\" hidden><p>hoặc · or</p>\
<form id=\"passkey-form\" method=\"post\" action=\"/authorize/passkey\"><input type=\"hidden\" name=\"tx\" value=\"{tx}\">\
<input type=\"hidden\" name=\"challenge_id\"><input type=\"hidden\" name=\"credential_id\">\
<input type=\"hidden\" name=\"client_data_json\"><input type=\"hidden\" name=\"authenticator_data\">\
<input type=\"hidden\" name=\"signature\">\
<button type=\"button\" id=\"passkey-button\" class=\"secondary\">Đăng nhập bằng khóa truy cập · Log in with a passkey</button>\
<p id=\"passkey-status\" role=\"status\" aria-live=\"polite\"></p></form></div>\
<script src=\"/assets/passkey-login.js\"></script>",
        c = esc(client_name),
        err = error_box(error),
        tx = esc(tx),
    );
    page(
        match error {
            None => StatusCode::OK,
            Some(e) if e.status == 429 => StatusCode::TOO_MANY_REQUESTS,
            Some(_) => StatusCode::UNAUTHORIZED,
        },
        "Đăng nhập",
        "Log in",
        &body,
    )
}

/// One-time code entry (step-up to level 2): a code sent by SMS, or one of the holder's
/// authenticator app when enrolled.
pub fn otp(tx: &str, masked_phone: &str, totp: bool, error: Option<&IdpError>) -> Response {
    let intro = if totp {
        "<p>Nhập mã 6 số đang hiển thị trong ứng dụng xác thực của bạn.\
<span class=\"en\">Enter the 6-digit code shown in your authenticator app.</span></p>"
            .to_owned()
    } else {
        format!(
            "<p>Mã xác thực đã được gửi tới số {p}.<span class=\"en\">A one-time code was sent to {p}.</span></p>",
            p = esc(masked_phone)
        )
    };
    let body = format!(
        "{intro}{err}\
<form method=\"post\" action=\"/authorize/otp\"><input type=\"hidden\" name=\"tx\" value=\"{tx}\">\
<label for=\"code\">Mã xác thực<span class=\"en\">One-time code</span></label>\
<input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"6\" required>\
<button type=\"submit\">Xác nhận · Confirm</button></form>",
        err = error_box(error),
        tx = esc(tx),
    );
    page(
        match error {
            None => StatusCode::OK,
            Some(e) if e.status == 429 => StatusCode::TOO_MANY_REQUESTS,
            Some(_) => StatusCode::UNAUTHORIZED,
        },
        "Nhập mã xác thực",
        "Enter the one-time code",
        &body,
    )
}

fn claim_label(scope: &str) -> (&'static str, &'static str) {
    match scope {
        "profile" => ("Họ tên, ngày sinh, giới tính", "Name, date of birth, sex"),
        "phone" => ("Số điện thoại", "Phone number"),
        _ => ("Thông tin khác", "Other information"),
    }
}

/// Consent: which information the client asks for.
pub fn consent(tx: &str, client_name: &str, claims: &[String]) -> Response {
    let items: String = claims
        .iter()
        .map(|c| {
            let (vi, en) = claim_label(c);
            format!(
                "<li data-scope=\"{}\">{vi}<span class=\"en\">{en}</span></li>",
                esc(c)
            )
        })
        .collect();
    let body = format!(
        "<p><strong>{c}</strong> muốn nhận các thông tin sau từ Cơ sở dữ liệu quốc gia về dân cư:\
<span class=\"en\">{c} asks for the following information from the national population database:</span></p>\
<ul>{items}</ul><p>Bạn có thể rút lại sự đồng ý bất cứ lúc nào.<span class=\"en\">You can withdraw consent at any time.</span></p>\
<form method=\"post\" action=\"/authorize/consent\"><input type=\"hidden\" name=\"tx\" value=\"{tx}\">\
<button type=\"submit\" name=\"decision\" value=\"allow\">Đồng ý · Allow</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Từ chối · Deny</button></form>",
        c = esc(client_name),
        tx = esc(tx),
    );
    page(
        StatusCode::OK,
        "Chia sẻ thông tin",
        "Share information",
        &body,
    )
}

/// An error that must not go back to the client (unknown client, unregistered redirect URI…).
pub fn error(e: &IdpError) -> Response {
    let body = format!(
        "{}<p>Vui lòng quay lại ứng dụng và thử lại.<span class=\"en\">Please go back to the application and try again.</span></p>",
        error_box(Some(e))
    );
    page(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        "Không thể tiếp tục",
        "Cannot continue",
        &body,
    )
}

/// After a logout with nowhere to return to.
pub fn logged_out() -> Response {
    page(
        StatusCode::OK,
        "Đã đăng xuất",
        "Logged out",
        "<p>Bạn đã đăng xuất khỏi hệ thống định danh điện tử.<span class=\"en\">You have logged out of the electronic identification system.</span></p>",
    )
}

/// The passkey-login script of the login page (served from `/assets/passkey-login.js`).
pub const PASSKEY_LOGIN_JS: &str = include_str!("../../assets/passkey-login.js");

/// Serves the passkey-login script: cacheable for a day, never sniffed.
pub fn passkey_login_js() -> Response {
    let mut r = (StatusCode::OK, PASSKEY_LOGIN_JS).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
