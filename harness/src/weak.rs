//! The warning a profile earns when it lets weak algorithms in (`[crypto] allow_weak`): the
//! defaults refuse them, so naming one is a deliberate choice the user should see every time.

/// Prints one `warning:` line on stderr when `allow_weak` names anything, whatever the log
/// level.
pub fn warn_if_allowed(allow_weak: &[String]) {
    if allow_weak.is_empty() {
        return;
    }
    let line = format!(
        "the profile allows weak algorithms ({}): crypto.allow_weak lets them be negotiated \
         where its proposals name them; they protect traffic less than the defaults",
        allow_weak.join(", ")
    );
    eprintln!("warning: {line}");
}
