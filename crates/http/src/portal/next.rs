//! What an error page tells the person to do next: a step that fits the error's code, and a
//! link to where that step starts.

use super::pages::ErrorPage;

/// One next step: what to do, in both languages, and the link that starts it.
struct Step {
    vi: &'static str,
    en: &'static str,
    href: &'static str,
    link_vi: &'static str,
    link_en: &'static str,
}

const HOME: (&str, &str, &str) = ("/portal", "Về trang đầu", "Back to the start");

fn step(code: &str, desk: bool) -> Step {
    let login = if desk {
        "/portal/login?as=officer"
    } else {
        "/portal/login?as=citizen"
    };
    let (vi, en, (href, link_vi, link_en)) = match code {
        "csrf_invalid" => (
            "Mở lại trang có biểu mẫu, điền lại rồi gửi. Nếu đã đăng xuất, hãy đăng nhập lại trước.",
            "Open the page with the form again, fill it in and send it. If you were logged out, log in first.",
            HOME,
        ),
        "portal_login_failed" | "login_required" => (
            "Bắt đầu đăng nhập lại từ đầu trong cùng trình duyệt này.",
            "Start the login again, from the beginning, in this same browser.",
            (login, "Đăng nhập lại", "Log in again"),
        ),
        "portal_level2_required" => (
            "Mang thẻ căn cước đến cơ quan công an nơi cư trú để nâng tài khoản lên mức 2, rồi đăng nhập lại.",
            "Take your identity card to your local police office to have the account raised to level 2, then log in again.",
            HOME,
        ),
        "portal_not_an_officer" => (
            "Đề nghị người quản trị của đơn vị liên kết tài khoản định danh của bạn với hồ sơ cán bộ, rồi đăng nhập lại.",
            "Ask your unit's administrator to link your e-ID account to your officer record, then log in again.",
            HOME,
        ),
        "eid_disabled" => (
            "Dùng cổng dịch vụ của cơ quan bạn, hoặc báo người quản trị máy chủ bật dịch vụ định danh điện tử.",
            "Use your agency's portal, or ask the server's administrator to turn the e-ID service on.",
            HOME,
        ),
        "internal" | "internal_error" => (
            "Thử lại sau vài phút. Nếu lỗi lặp lại, hãy báo bộ phận hỗ trợ kèm thời điểm xảy ra lỗi.",
            "Try again in a few minutes. If it keeps happening, tell the help desk when it happened.",
            HOME,
        ),
        c if c.ends_with("not_found") => (
            "Kiểm tra lại thông tin đã nhập. Nếu hồ sơ của bạn bị thiếu hoặc sai, hãy gửi yêu cầu đến cơ quan công an nơi cư trú.",
            "Check what you entered. If your record is missing or wrong, ask your local police office to correct it.",
            HOME,
        ),
        _ => (
            "Quay lại trang trước, sửa thông tin theo thông báo trên rồi thử lại.",
            "Go back to the previous page, correct what the message above says, and try again.",
            HOME,
        ),
    };
    Step {
        vi,
        en,
        href,
        link_vi,
        link_en,
    }
}

impl ErrorPage {
    fn step(&self) -> Step {
        step(&self.msg.code, self.c.desk())
    }

    /// What to do next, in the page's language.
    pub fn next_text(&self) -> &'static str {
        let s = self.step();
        self.c.lang.s(s.vi, s.en)
    }

    /// Where the next step starts.
    pub fn next_href(&self) -> &'static str {
        self.step().href
    }

    /// The link's text.
    pub fn next_link(&self) -> &'static str {
        let s = self.step();
        self.c.lang.s(s.link_vi, s.link_en)
    }
}
