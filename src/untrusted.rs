//! Text that came from another peer, made safe to show: control characters
//! escaped (nothing reaches a log or a terminal raw) and cut short, so that
//! an echo or a relayed message never grows with what a peer sent.

/// Bytes of an id or path shown in an error message.
const QUOTED_BYTES: usize = 80;
/// Bytes of a peer's own message (an error it reports) shown to the user.
const MESSAGE_BYTES: usize = 400;

/// An id, path or version from a request, for an error message: quoted, every special
/// character escaped, at most a short prefix (then its full length).
pub fn quote_untrusted(text: &str) -> String {
    let (shown, cut) = shorten(text, QUOTED_BYTES, |c, out| out.extend(c.escape_debug()));
    with_length_if_cut(format!("\"{shown}\""), cut, text)
}

/// A message a peer sent (the text of its error answer): control characters escaped, cut.
pub fn untrusted_message(text: &str) -> String {
    let (shown, cut) = shorten(text, MESSAGE_BYTES, |c, out| {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    });
    with_length_if_cut(shown, cut, text)
}

/// The escaped prefix of `text` that first reaches `max_bytes` (and true), or all of it.
fn shorten(text: &str, max_bytes: usize, escape: impl Fn(char, &mut String)) -> (String, bool) {
    let mut shown = String::new();
    for c in text.chars() {
        if shown.len() >= max_bytes {
            return (shown, true);
        }
        escape(c, &mut shown);
    }
    (shown, false)
}

fn with_length_if_cut(shown: String, cut: bool, text: &str) -> String {
    if cut {
        format!("{shown}... ({} bytes)", text.len())
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_is_escaped_and_cut() {
        assert_eq!(quote_untrusted("openarena"), "\"openarena\"");
        assert_eq!(quote_untrusted("a\"b\n"), "\"a\\\"b\\n\"", "escaping alone is no cut");
        let long = "\u{7f}".repeat(150_000);
        let quoted = quote_untrusted(&long);
        assert!(quoted.len() < 128, "{}", quoted.len());
        assert!(quoted.ends_with("... (150000 bytes)"), "{quoted}");
        assert!(!quoted.contains('\u{7f}'), "control characters are escaped");
        assert_eq!(quote_untrusted(&"a".repeat(80)), format!("\"{}\"", "a".repeat(80)));
    }

    #[test]
    fn a_peer_message_keeps_its_prose_but_not_its_length_or_control_characters() {
        assert_eq!(
            untrusted_message("openarena has no file \"x\""),
            "openarena has no file \"x\""
        );
        assert_eq!(untrusted_message("red \u{1b}[31m"), "red \\u{1b}[31m");
        let long = untrusted_message(&"x".repeat(1 << 20));
        assert!(long.len() < 450, "{}", long.len());
        assert!(long.ends_with("... (1048576 bytes)"), "{long}");
    }
}
