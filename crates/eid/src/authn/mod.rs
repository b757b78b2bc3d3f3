//! Authenticators (phương thức xác thực): passcodes, one-time codes, TOTP, and the throttling
//! that guards all of them. Passkeys live in [`crate::webauthn`].

pub mod otp;
pub mod passcode;
pub mod throttle;
pub mod totp;
