//! My account's security (`/portal/me/security`): change the passcode (the current one is
//! asked for), enrol an authenticator app (the `otpauth://` URI as text and as a QR code drawn
//! here as SVG, confirmed with a first code) or remove it, register passkeys (WebAuthn, through
//! the small vendored `passkey-register.js`; the rest of the page works without JavaScript) and
//! list or remove them. Each change goes through the e-ID use-cases, which write it to the
//! usage history; errors are shown beside the form they belong to.

use super::pages::{Chrome, Lang};
use super::{Ctx, Msg, Side, blocking, context, error_page, login_required, posted, query, render};
use crate::AppState;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dancu_domain::PersonalId;
use std::net::SocketAddr;

const REGISTER_JS: &str = include_str!("assets/passkey-register.js");

/// Which part of the page a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Passcode,
    Totp,
    Passkey,
}

/// A message shown beside one part of the page: an error or a confirmation.
#[derive(Debug, Clone)]
pub(crate) struct Note {
    pub(crate) part: Part,
    pub(crate) ok: bool,
    pub(crate) msg: Msg,
}

/// A passkey in the holder's list.
#[derive(Debug, Clone)]
pub(crate) struct PasskeyRow {
    pub(crate) id: String,
    pub(crate) short: String,
    pub(crate) uses: u32,
    pub(crate) synced: bool,
}

/// The security page.
#[derive(askama::Template)]
#[template(path = "portal/security.html")]
pub(crate) struct Security {
    pub(crate) c: Chrome,
    pub(crate) has_account: bool,
    /// A confirmed authenticator app.
    pub(crate) totp: bool,
    /// An enrolment in progress: the secret, the URI and its QR code (empty otherwise).
    pub(crate) totp_secret: String,
    pub(crate) totp_uri: String,
    pub(crate) totp_qr: String,
    pub(crate) passkeys: Vec<PasskeyRow>,
    pub(crate) note: Option<Note>,
}

impl Security {
    /// The message for one part of the page, if it has one.
    fn note_for(&self, part: &str) -> Option<&Note> {
        let part = match part {
            "passcode" => Part::Passcode,
            "totp" => Part::Totp,
            _ => Part::Passkey,
        };
        self.note.as_ref().filter(|n| n.part == part)
    }
}

fn source(addr: Option<Extension<ConnectInfo<SocketAddr>>>) -> String {
    addr.map(|Extension(ConnectInfo(a))| dancu_eid::authn::throttle::source_key(a.ip()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The `otpauth://` URI as an SVG QR code (error correction M), or nothing if it does not fit.
pub(crate) fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build()
            // The renderer's XML declaration is not wanted inside HTML.
            .split_once("?>")
            .map(|(_, svg)| svg.trim().to_owned())
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn signed_in(ctx: &Ctx) -> Option<PersonalId> {
    ctx.person.filter(|_| ctx.officer.is_none())
}

async fn page(state: AppState, ctx: Ctx, id: PersonalId, note: Option<Note>) -> Response {
    let Some(idp) = state.idp.clone() else {
        return error_page(&ctx, Side::Citizen, StatusCode::NOT_FOUND, &no_eid());
    };
    let r = blocking(move || {
        let account = idp.account(&id)?;
        let totp = idp.has_totp(&id)?;
        let pending = if totp { None } else { idp.pending_totp(&id)? };
        let passkeys = idp.passkey_list(&id)?;
        Ok((account.is_some(), totp, pending, passkeys))
    })
    .await;
    match r {
        Ok((has_account, totp, pending, passkeys)) => {
            let page = Security {
                c: ctx.chrome(Side::Citizen, ("Bảo mật tài khoản", "Account security")),
                has_account,
                totp,
                totp_secret: pending
                    .as_ref()
                    .map(|p| p.secret.clone())
                    .unwrap_or_default(),
                totp_uri: pending.as_ref().map(|p| p.uri.clone()).unwrap_or_default(),
                totp_qr: pending.map(|p| qr_svg(&p.uri)).unwrap_or_default(),
                passkeys: passkeys
                    .into_iter()
                    .map(|p| PasskeyRow {
                        short: p.id.chars().take(12).collect(),
                        id: p.id,
                        uses: p.sign_count,
                        synced: p.backed_up,
                    })
                    .collect(),
                note,
            };
            ctx.finish(render(StatusCode::OK, &page))
        }
        Err(m) => error_page(&ctx, Side::Citizen, StatusCode::INTERNAL_SERVER_ERROR, &m),
    }
}

fn no_eid() -> Msg {
    Msg::new(
        "eid_disabled",
        "Máy chủ này không bật dịch vụ định danh điện tử; hãy dùng cổng dịch vụ của cơ quan bạn",
        "This server does not run the e-ID service; use your agency's portal",
    )
}

/// The security page.
pub(super) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: RawQuery,
) -> Response {
    let q = query(q.0);
    let ctx = context(&state, &headers, &q);
    match signed_in(&ctx) {
        Some(id) => page(state, ctx, id, None).await,
        None => login_required(&ctx, Side::Citizen),
    }
}

/// Runs one change from a posted form and shows the page again with its outcome beside `part`.
async fn change(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    part: Part,
    done: Msg,
    act: impl FnOnce(
        &dancu_idp::Idp,
        PersonalId,
        &std::collections::BTreeMap<String, String>,
    ) -> Result<(), Msg>
    + Send
    + 'static,
) -> Response {
    let (ctx, form) = match posted(&state, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let Some(id) = signed_in(&ctx) else {
        return login_required(&ctx, Side::Citizen);
    };
    let Some(idp) = state.idp.clone() else {
        return error_page(&ctx, Side::Citizen, StatusCode::NOT_FOUND, &no_eid());
    };
    let r = blocking(move || act(&idp, id, &form)).await;
    let note = match r {
        Ok(()) => Note {
            part,
            ok: true,
            msg: done,
        },
        Err(msg) => Note {
            part,
            ok: false,
            msg,
        },
    };
    let status_ok = note.ok;
    let mut resp = page(state, ctx, id, Some(note)).await;
    if !status_ok && resp.status() == StatusCode::OK {
        // A refused change answers 422 so that scripts and tests can tell, with the same page.
        *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    resp
}

fn field<'a>(form: &'a std::collections::BTreeMap<String, String>, k: &str) -> &'a str {
    form.get(k).map(String::as_str).unwrap_or("")
}

/// Changes the passcode.
pub(super) async fn passcode(
    State(state): State<AppState>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let src = source(addr);
    change(
        state,
        headers,
        body,
        Part::Passcode,
        Msg::new(
            "passcode_changed",
            "Đã đổi mật khẩu. Lần đăng nhập sau hãy dùng mật khẩu mới.",
            "Passcode changed. Use the new one next time you log in.",
        ),
        move |idp, id, form| {
            let (current, new, again) = (
                field(form, "current"),
                field(form, "new"),
                field(form, "again"),
            );
            if new != again {
                return Err(Msg::new(
                    "passcode_mismatch",
                    "Hai lần nhập mật khẩu mới không giống nhau",
                    "The two entries of the new passcode differ",
                ));
            }
            Ok(idp.change_passcode(&id, current, new, &src)?)
        },
    )
    .await
}

/// Starts enrolling an authenticator app: the page then shows the QR code and asks for a code.
pub(super) async fn totp_begin(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    change(
        state,
        headers,
        body,
        Part::Totp,
        Msg::new(
            "totp_started",
            "Quét mã QR bằng ứng dụng xác thực rồi nhập mã 6 số đang hiện để xác nhận.",
            "Scan the QR code with your authenticator app, then enter the 6-digit code it shows.",
        ),
        |idp, id, _| {
            idp.begin_totp(&id)?;
            Ok(())
        },
    )
    .await
}

/// Confirms the authenticator app with its current code.
pub(super) async fn totp_confirm(
    State(state): State<AppState>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let src = source(addr);
    change(
        state,
        headers,
        body,
        Part::Totp,
        Msg::new(
            "totp_enrolled",
            "Đã thêm ứng dụng xác thực.",
            "Authenticator app added.",
        ),
        move |idp, id, form| Ok(idp.confirm_totp(&id, field(form, "code").trim(), &src)?),
    )
    .await
}

/// Removes the authenticator app (or abandons an enrolment).
pub(super) async fn totp_remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    change(
        state,
        headers,
        body,
        Part::Totp,
        Msg::new(
            "totp_removed",
            "Đã gỡ ứng dụng xác thực.",
            "Authenticator app removed.",
        ),
        |idp, id, _| {
            if idp.remove_totp(&id)? {
                Ok(())
            } else {
                Err(Msg::new(
                    "eid_totp_not_enrolled",
                    "Tài khoản chưa có ứng dụng xác thực",
                    "The account has no authenticator app",
                ))
            }
        },
    )
    .await
}

/// The options of a passkey registration, for `passkey-register.js` (JSON; the form's CSRF
/// token is required as for every post).
pub(super) async fn passkey_options(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = match posted(&state, &headers, &body) {
        Ok((ctx, _)) => ctx,
        Err(_) => {
            return crate::ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_invalid",
                "Biểu mẫu đã hết hạn; vui lòng tải lại trang và thử lại",
                "The form has expired; reload the page and try again",
            )
            .into_response();
        }
    };
    let (Some(id), Some(idp)) = (signed_in(&ctx), state.idp.clone()) else {
        return crate::ApiError::new(
            StatusCode::UNAUTHORIZED,
            "login_required",
            "Vui lòng đăng nhập lại",
            "Please log in again",
        )
        .into_response();
    };
    match tokio::task::spawn_blocking(move || idp.passkey_registration_options(&id)).await {
        Ok(Ok(v)) => {
            let mut r = axum::Json(v).into_response();
            r.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            r
        }
        Ok(Err(e)) => crate::ApiError::from(e).into_response(),
        Err(_) => {
            crate::ApiError::from(dancu_idp::IdpError::internal("task failed")).into_response()
        }
    }
}

/// Finishes a passkey registration from the form the script fills in.
pub(super) async fn passkey_add(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    change(
        state,
        headers,
        body,
        Part::Passkey,
        Msg::new(
            "passkey_added",
            "Đã thêm khóa truy cập. Lần sau bạn có thể đăng nhập bằng khóa này.",
            "Passkey added. Next time you can log in with it.",
        ),
        |idp, id, form| {
            let bad = || {
                Msg::new(
                    "passkey_malformed",
                    "Trình duyệt gửi khóa truy cập không đúng định dạng; hãy thử lại",
                    "The browser sent a malformed passkey; try again",
                )
            };
            let cdj = dancu_eid::b64::decode(field(form, "client_data_json")).ok_or_else(bad)?;
            let att = dancu_eid::b64::decode(field(form, "attestation_object")).ok_or_else(bad)?;
            idp.register_passkey(&id, field(form, "challenge_id"), &cdj, &att)?;
            Ok(())
        },
    )
    .await
}

/// Removes one of my passkeys.
pub(super) async fn passkey_remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    change(
        state,
        headers,
        body,
        Part::Passkey,
        Msg::new(
            "passkey_removed",
            "Đã gỡ khóa truy cập.",
            "Passkey removed.",
        ),
        |idp, id, form| Ok(idp.remove_passkey(&id, field(form, "id"))?),
    )
    .await
}

/// The passkey registration script.
pub(super) async fn register_js() -> Response {
    super::asset(REGISTER_JS, "text/javascript; charset=utf-8")
}

/// How a change to an authenticator reads in the usage history.
pub(crate) fn usage_what(
    l: Lang,
    method: dancu_eid::oidc::claims::Amr,
    change: dancu_eid::history::AuthenticatorChange,
) -> String {
    use dancu_eid::history::AuthenticatorChange as C;
    use dancu_eid::oidc::claims::Amr;
    let what = match method {
        Amr::Passcode => l.s("mật khẩu", "passcode"),
        Amr::Totp => l.s("ứng dụng xác thực", "authenticator app"),
        Amr::Passkey => l.s("khóa truy cập", "passkey"),
        _ => l.s("phương thức xác thực", "authenticator"),
    };
    match (l, change) {
        (Lang::Vi, C::Added) => format!("Thêm {what}"),
        (Lang::Vi, C::Replaced) => format!("Đổi {what}"),
        (Lang::Vi, C::Removed) => format!("Gỡ {what}"),
        (Lang::En, C::Added) => format!("Added {what}"),
        (Lang::En, C::Replaced) => format!("Changed {what}"),
        (Lang::En, C::Removed) => format!("Removed {what}"),
    }
}
