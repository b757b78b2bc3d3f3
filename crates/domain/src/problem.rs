//! A rule that failed, said in a form every layer can show: a stable machine code plus a
//! Vietnamese and an English sentence. Transport layers (HTTP problem+json, CLI) render it; the
//! domain decides the words.

/// An error that names the rule it broke, in both of the project's languages.
pub trait Problem: std::fmt::Display {
    /// Stable snake_case code that clients can branch on; never changes once published.
    fn code(&self) -> &'static str;
    /// The Vietnamese message (first language of the product).
    fn message_vi(&self) -> String;
    /// The English message; by default the `Display` text.
    fn message_en(&self) -> String {
        self.to_string()
    }
}
